"""Benchmarks: each prints ratios measured in one run, and names the machine it ran on."""
