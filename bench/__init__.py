"""Benchmarks that print ratios against reference tools measured in the same run."""
