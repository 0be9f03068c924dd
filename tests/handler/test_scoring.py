"""The fast model's contiguous-weights scorer gives sklearn's own probabilities."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.naive_bayes import ComplementNB
from sklearn.pipeline import make_pipeline

from handlers.artifacts import FAST_MODEL_FILE
from handlers.scoring import scorer, softmax
from scripts.nsmc import TEST_FILE, read_labelled


def test_scorer_equals_pipeline_predict_proba(fast_artifacts: Path, nsmc_dir: Path):
    pipeline = joblib.load(fast_artifacts / FAST_MODEL_FILE)
    texts, _ = read_labelled(nsmc_dir / TEST_FILE, max_rows=500)
    expected = pipeline.predict_proba(texts)
    fast = scorer(pipeline)
    np.testing.assert_allclose(fast(texts), expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(fast(texts[:1]), expected[:1], atol=1e-9)


def test_scorer_multiplies_by_its_own_contiguous_weights(fast_artifacts: Path, monkeypatch):
    """What makes it fast: a C-contiguous (features x classes) copy, made once; the model's
    transposed view, whose use makes scipy copy every weight per call, is never touched."""
    pipeline = joblib.load(fast_artifacts / FAST_MODEL_FILE)
    model = pipeline.steps[-1][1]
    fast = scorer(pipeline)
    captured = [cell.cell_contents for cell in fast.__closure__ or ()]
    [weights] = [c for c in captured if isinstance(c, np.ndarray) and c.ndim == 2]
    assert weights.shape == model.feature_log_prob_.T.shape and weights.flags.c_contiguous
    assert not model.feature_log_prob_.T.flags.c_contiguous  # why the copy is needed
    expected = pipeline.predict_proba(["정말 재밌다"])
    model.feature_log_prob_ = np.full_like(model.feature_log_prob_, np.nan)  # would poison it
    monkeypatch.setattr(pipeline, "predict_proba", None)
    np.testing.assert_allclose(fast(["정말 재밌다"]), expected, atol=1e-9)


def test_other_classifiers_keep_their_own_predict_proba():
    pipeline = make_pipeline(CountVectorizer(), ComplementNB()).fit(["좋다", "싫다"], [1, 0])
    assert scorer(pipeline) == pipeline.predict_proba


def test_softmax_rows_sum_to_one_without_overflow():
    rows = softmax(np.array([[1000.0, 1001.0], [-5.0, -5.0]]))
    np.testing.assert_allclose(rows.sum(axis=1), 1.0)
    np.testing.assert_allclose(rows[1], [0.5, 0.5])
