"""Benchmarks: each prints its figures and appends them, with the machine, to benchmarks/RESULTS.md."""
