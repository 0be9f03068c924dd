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
    fast = scorer(pipeline)
    assert fast is not pipeline.predict_proba
    np.testing.assert_allclose(fast(texts), pipeline.predict_proba(texts), rtol=0, atol=1e-9)
    np.testing.assert_allclose(fast(texts[:1]), pipeline.predict_proba(texts[:1]), atol=1e-9)


def test_other_classifiers_keep_their_own_predict_proba():
    pipeline = make_pipeline(CountVectorizer(), ComplementNB()).fit(["좋다", "싫다"], [1, 0])
    assert scorer(pipeline) == pipeline.predict_proba


def test_softmax_rows_sum_to_one_without_overflow():
    rows = softmax(np.array([[1000.0, 1001.0], [-5.0, -5.0]]))
    np.testing.assert_allclose(rows.sum(axis=1), 1.0)
    np.testing.assert_allclose(rows[1], [0.5, 0.5])
