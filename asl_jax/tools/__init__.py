"""Small command-line programs."""
