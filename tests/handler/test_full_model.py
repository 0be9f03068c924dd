"""The full sentiment_fast model (150k rows: fit + validation split), as `make serve` builds it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from handlers.fast_handler import SentimentFastHandler
from scripts.registry import MODELS
from scripts.training.train_fast import train
from tests.handler_context import make_context, run_batch

SEED_SENTENCES = [
    ("음악이 주가 된, 최고의 음악영화", "positive"),
    ("발연기 도저히 못보겠다 진짜 이렇게 연기를 못할거라곤 상상도 못했네", "negative"),
    ("실화라서더욱아름답고찡하네요...많이울었어요벌써4년이란시간이흘렀네요", "positive"),
]


@pytest.fixture(scope="module")
def full_model(nsmc_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("full_fast")
    return out, train(nsmc_dir, out)


def test_full_model_beats_seed_baseline(full_model):
    _, metadata = full_model
    # every training row is used: the fit part trains, the validation part calibrates
    assert metadata["train_part"] == "fit"
    assert not metadata["calibration"]["validation_seen_in_training"]
    assert metadata["train_rows"] + metadata["calibration"]["rows"] == 150_000
    assert metadata["test_accuracy"] >= 0.875  # the target; measured 0.8754
    assert metadata["test_accuracy"] - metadata["seed_baseline_accuracy"] >= 0.04
    assert set(metadata["artifact_sha256"]) == {"model.joblib"}


@pytest.fixture(scope="module")
def full_handler(full_model) -> tuple[SentimentFastHandler, object]:
    """Loaded once: the full model takes seconds to load."""
    model_dir, _ = full_model
    context = make_context("sentiment_fast", model_dir, MODELS["sentiment_fast"].config_file)
    handler = SentimentFastHandler()
    handler.initialize(context)
    return handler, context


@pytest.mark.parametrize("text,label", SEED_SENTENCES)
def test_seed_sentences(full_handler, text: str, label: str):
    handler, context = full_handler
    [(status, body, _)] = run_batch(
        handler, context, [({"body": {"text": text}}, "application/json")]
    )
    assert status == 200 and json.loads(body)["label"] == label
