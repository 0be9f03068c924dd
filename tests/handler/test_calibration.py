"""Calibration: fitted on held-out rows, monotone, stored in metadata.json, applied when served."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from handlers.artifacts import TamperedArtifactError, update_metadata
from handlers.calibration import (
    Calibration,
)
from handlers.fast_handler import MODEL_FILE, SentimentFastHandler
from scripts.registry import BERT_CHECKPOINT, MODELS
from tests.handler_context import make_context, run_batch

CONFIG = MODELS["sentiment_fast"].config_file


# --------------------------------------------------------------------------- stored and served


def test_training_holds_out_and_stores_the_calibration(fast_artifacts: Path):
    metadata = json.loads((fast_artifacts / "metadata.json").read_text())
    entry = metadata["calibration"]
    assert metadata["train_part"] == "fit" and entry["validation_seen_in_training"] is False
    # fitted, not the identity (char NB was over-confident, scale < 1; NB-SVM is a little
    # under-confident, scale > 1)
    assert entry["method"] == "temperature-logodds" and entry["scale"] > 0
    assert abs(entry["scale"] - 1) > 0.01
    assert entry["shift"] == 0.0
    assert entry["validation_ece_15_bins_after"] < entry["validation_ece_15_bins_before"]


def test_committed_bert_checkpoint_carries_its_calibration():
    metadata = json.loads((BERT_CHECKPOINT / "metadata.json").read_text())
    assert Calibration.from_metadata(metadata) != Calibration()
    # trained on the fit part: its calibration is fitted on reviews it never saw (docs say so)
    assert metadata["train_part"] == "fit"
    assert metadata["calibration"]["validation_seen_in_training"] is False


def test_answers_and_explanations_are_calibrated(handler_and_context):
    handler, context = handler_and_context
    text = "정말 최고의 영화, 감동적이에요"
    raw = np.asarray(handler.predict_proba([text]))
    expected = handler.calibration.apply(raw)[0]
    assert abs(expected[1] - raw[0, 1]) > 1e-3  # the calibration does change the answer
    [(status, body, _)] = run_batch(handler, context, [({"body": text}, "text/plain")])
    answer = json.loads(body)
    assert status == 200
    assert answer["probabilities"]["positive"] == pytest.approx(expected[1], abs=1e-6)
    [raw_why], [why] = handler.explain_texts([text]), handler.explanations([text])
    scale, shift = handler.calibration.scale, handler.calibration.shift
    assert [t.score for t in why.tokens] == pytest.approx([scale * t.score for t in raw_why.tokens])
    assert why.base == pytest.approx(scale * raw_why.base + shift)
    # the sum rule moves with it: calibrated base + every n-gram's term = calibrated log-odds
    everything = sum(handler.ngram_scores([text])[0].values())
    assert why.base + scale * everything == pytest.approx(
        math.log(expected[1] / expected[0]), abs=1e-6
    )


def test_updating_metadata_never_blesses_a_changed_artifact(fast_artifacts: Path, tmp_path: Path):
    model_dir = tmp_path / "model"
    shutil.copytree(fast_artifacts, model_dir)
    with open(model_dir / MODEL_FILE, "ab") as handle:
        handle.write(b"\x00")
    update_metadata(model_dir, {"calibration": Calibration(0.5, 0.1).to_json()})
    with pytest.raises(TamperedArtifactError, match="refusing to load"):
        SentimentFastHandler().initialize(make_context("sentiment_fast", model_dir, CONFIG))
