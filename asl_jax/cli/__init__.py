"""The command-line layer: one thin module per command (flags -> one library call).

Nothing in the library imports from here; environment set-up (logging, huge pages, the
compilation cache) happens here and nowhere else.
"""
