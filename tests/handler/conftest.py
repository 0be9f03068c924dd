"""Handler tier: TorchServe's real Context and the handler classes, in this process, no server."""

from __future__ import annotations

from pathlib import Path

import pytest

from handlers.fast_handler import SentimentFastHandler
from scripts.registry import MODELS
from tests.handler_context import make_context


@pytest.fixture(scope="module")
def handler_and_context(fast_artifacts: Path):
    """sentiment_fast (the 20k-row test model) loaded as a worker loads it, with its Context."""
    context = make_context("sentiment_fast", fast_artifacts, MODELS["sentiment_fast"].config_file)
    handler = SentimentFastHandler()
    handler.initialize(context)
    return handler, context
