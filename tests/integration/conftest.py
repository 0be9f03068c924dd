"""Integration fixtures beside the shared `server` (tests/conftest.py), which runs the project's
default configuration: the model API off."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from scripts.ops.model_api import model_api_properties
from scripts.ops.server import TorchServe
from tests.conftest import local_server


@pytest.fixture(scope="session")
def registering_server(model_store: Path) -> Iterator[TorchServe]:
    """sentiment_fast on a TorchServe with the model API on: what `manage register` and
    `rollout` open (scripts/ops/model_api.py), for the tests of what may be registered."""
    with local_server(model_store, ("sentiment_fast",), "ts-reg-",
                      **model_api_properties(True)) as instance:  # fmt: skip
        yield instance
