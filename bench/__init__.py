"""Benchmarks (not tests): run as ``python -m bench.NAME``; the last line printed is JSON."""
