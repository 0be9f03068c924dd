"""Baselines the benchmark compares TorchServe against (see scripts/bench.py)."""
