"""Benchmarks: each script prints one JSON line with its figure and the baseline measured in the same run."""
