"""Benchmarks: speed and memory, each printing ratios against a baseline measured in the same run."""
