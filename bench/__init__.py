"""Benchmarks: speed and memory, each printing ratios to a baseline measured in the same run."""
