"""Unit tier: no Java, no server, no torch; the whole tier runs in seconds (`make test-unit`)."""

from __future__ import annotations

import sys

import pytest

HEAVY = ("torch", "transformers", "onnxruntime")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A unit-only run that imported torch (say, through a handler module) fails here: the
    tier's promise is a quick loop, and one careless import would quietly break it."""
    items = getattr(session, "items", [])
    if not items or not all(item.get_closest_marker("unit") for item in items):
        return  # other tiers in the same run import torch on purpose
    loaded = [name for name in HEAVY if name in sys.modules]
    if loaded and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print(f"\nunit tier imported {', '.join(loaded)}: keep heavy imports out of it")
