"""Benchmarks: scripts that print figures (throughput, memory); never asserted in tests."""
