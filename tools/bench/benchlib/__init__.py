"""Benchmark harness for nd against NumPy and PyTorch (see tools/bench/README.md)."""
