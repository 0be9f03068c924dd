"""Baselines the benchmark compares TorchServe against (see benchmarks/bench.py)."""
