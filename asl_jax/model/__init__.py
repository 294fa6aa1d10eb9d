"""Flax Linen modules of the detector; build.py turns a config into constructor arguments."""
