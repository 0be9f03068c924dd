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
    PLATT,
    Calibration,
    ece,
    fit,
    from_log_odds,
    log_odds,
    reliability,
)
from handlers.fast_handler import MODEL_FILE, SentimentFastHandler
from scripts.registry import BERT_CHECKPOINT, MODELS
from tests.handler_context import make_context, run_batch
from tests.test_fast_handler import handler_and_context  # noqa: F401 (the loaded fast model)

CONFIG = MODELS["sentiment_fast"].config_file


def synthetic(scale: float, shift: float, n: int = 40_000, seed: int = 0):
    """Over-confident log-odds z whose true P(positive) is sigmoid(scale * z + shift)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 10.0, n)
    labels = (rng.random(n) < 1 / (1 + np.exp(-(scale * z + shift)))).astype(int)
    return z, labels


@pytest.mark.parametrize("shift", [0.0, 0.4])
def test_fit_recovers_the_true_calibration(shift: float):
    z, labels = synthetic(0.3, shift)
    fitted = fit(z, labels, PLATT)
    assert fitted.scale == pytest.approx(0.3, rel=0.05)
    assert fitted.shift == pytest.approx(shift, abs=0.08)
    raw = from_log_odds(z)
    assert ece(raw, labels) > 0.1 > 0.02 > ece(fitted.apply(raw), labels)


def test_temperature_is_monotone_and_keeps_every_label():
    z, labels = synthetic(0.3, 0.0)
    fitted = fit(z, labels)  # the default: temperature, no shift
    assert fitted.shift == 0.0 and fitted.scale == pytest.approx(0.3, rel=0.05)
    calibrated = fitted.apply(from_log_odds(z))
    assert np.all(np.diff(calibrated[np.argsort(z), 1]) >= 0)
    assert np.array_equal(calibrated.argmax(axis=1), from_log_odds(z).argmax(axis=1))
    assert ece(calibrated, labels) < 0.02


def test_log_odds_survive_naive_bayes_extremes():
    """A float64 row keeps p_negative = e^-100, so the log-odds (and the ranking) survive."""
    z = np.array([-300.0, -100.0, -1.0, 0.0, 2.5, 100.0, 300.0])
    assert log_odds(from_log_odds(z)) == pytest.approx(z, rel=1e-9)
    assert np.isfinite(log_odds([[0.0, 1.0], [1.0, 0.0]])).all()


def test_ece_by_hand():
    """Two bins: 0.95-confident and right 1 of 2 times (gap 0.45), 0.55 and right (gap 0.45)."""
    rows = [[0.05, 0.95], [0.05, 0.95], [0.45, 0.55], [0.45, 0.55]]
    labels = [1, 0, 1, 1]
    assert ece(rows, labels) == pytest.approx(0.5 * 0.45 + 0.5 * 0.45)
    curve = reliability(rows, labels)
    assert curve.count.sum() == 4 and sorted(curve.count[curve.count > 0]) == [2, 2]


def test_identity_without_an_entry_and_unknown_methods_refused():
    rows = np.array([[0.2, 0.8]])
    assert Calibration.from_metadata({}).apply(rows) == pytest.approx(rows)
    with pytest.raises(ValueError, match="unknown calibration"):
        Calibration.from_metadata({"calibration": {"method": "isotonic", "scale": 1, "shift": 0}})


# --------------------------------------------------------------------------- stored and served


def test_training_holds_out_and_stores_the_calibration(fast_artifacts: Path):
    metadata = json.loads((fast_artifacts / "metadata.json").read_text())
    entry = metadata["calibration"]
    assert metadata["train_part"] == "fit" and entry["validation_seen_in_training"] is False
    assert entry["method"] == "temperature-logodds" and 0 < entry["scale"] < 1  # over-confident
    assert entry["shift"] == 0.0
    assert entry["validation_ece_15_bins_after"] < entry["validation_ece_15_bins_before"]


def test_committed_bert_checkpoint_carries_its_calibration():
    metadata = json.loads((BERT_CHECKPOINT / "metadata.json").read_text())
    assert Calibration.from_metadata(metadata) != Calibration()
    assert metadata["calibration"]["validation_seen_in_training"] is True  # said in docs too


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
