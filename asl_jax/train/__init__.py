"""Train state, optimizer, step, checkpoints and the training loop."""
