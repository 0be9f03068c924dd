"""The fast models' linear scorer gives sklearn's own probabilities."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.naive_bayes import ComplementNB
from sklearn.pipeline import make_pipeline

from handlers import scoring
from handlers.artifacts import FAST_MODEL_FILE
from handlers.scoring import linear_log_odds, scorer, softmax
from scripts.nsmc import TEST_FILE, read_labelled
from scripts.training.train_fast import char_ngram_pipeline, nbsvm_pipeline


def test_scorer_equals_pipeline_predict_proba(fast_artifacts: Path, nsmc_dir: Path):
    """The served model's scorer; sklearn scales the float32 features in float32 before its
    float64 product, the scorer folds the scaling into float64 weights: ~1e-8 apart."""
    pipeline = joblib.load(fast_artifacts / FAST_MODEL_FILE)
    texts, _ = read_labelled(nsmc_dir / TEST_FILE, max_rows=500)
    expected = pipeline.predict_proba(texts)
    fast = scorer(pipeline)
    np.testing.assert_allclose(fast(texts), expected, rtol=0, atol=1e-7)
    np.testing.assert_allclose(fast(texts[:1]), expected[:1], atol=1e-7)


def test_skipping_sklearns_input_checks_changes_no_bit(fast_artifacts: Path, nsmc_dir: Path,
                                                       monkeypatch):  # fmt: skip
    pipeline = joblib.load(fast_artifacts / FAST_MODEL_FILE)
    texts, _ = read_labelled(nsmc_dir / TEST_FILE, max_rows=300)
    trusted = scorer(pipeline)(texts)
    monkeypatch.setattr(scoring, "TRUSTED_INPUT", {})
    np.testing.assert_array_equal(scorer(pipeline)(texts), trusted)


def test_nb_scorer_multiplies_by_its_own_contiguous_weights(nsmc_dir: Path, monkeypatch):
    """What makes it fast: one C-contiguous weight per feature (the log-odds), made once; the
    model's transposed view, whose use makes scipy copy every weight per call, is never
    touched."""
    texts, labels = read_labelled(nsmc_dir / TEST_FILE, max_rows=3000)
    pipeline = char_ngram_pipeline().fit(texts, labels)
    model = pipeline.steps[-1][1]
    fast = scorer(pipeline)
    captured = [cell.cell_contents for cell in fast.__closure__ or ()]
    [weights] = [c for c in captured if isinstance(c, np.ndarray)]
    assert weights.shape == model.feature_log_prob_.shape[1:] and weights.flags.c_contiguous
    assert not model.feature_log_prob_.T.flags.c_contiguous  # why the copy is needed
    expected = pipeline.predict_proba(texts[:50])
    model.feature_log_prob_ = np.full_like(model.feature_log_prob_, np.nan)  # would poison it
    monkeypatch.setattr(pipeline, "predict_proba", None)
    np.testing.assert_allclose(fast(texts[:50]), expected, atol=1e-9)


def test_nbsvm_scorer_and_log_odds_equal_the_pipeline(nsmc_dir: Path):
    """NB-SVM's scaling folded into the weights: the same probabilities as the pipeline,
    whichever class order the classifier learnt, and bias + terms = its decision function."""
    texts, labels = read_labelled(nsmc_dir / TEST_FILE, max_rows=3000)
    for flip in (False, True):
        names = [1 - y for y in labels] if flip else labels
        pipeline = nbsvm_pipeline().fit(texts[:2500], names[:2500])
        expected = pipeline.predict_proba(texts[2500:])
        np.testing.assert_allclose(scorer(pipeline)(texts[2500:]), expected, atol=1e-6)
        linear = linear_log_odds(pipeline)
        decision = pipeline[0].transform(texts[2500:]) @ linear.weights + linear.bias
        np.testing.assert_allclose(decision, np.log(expected[:, 1] / expected[:, 0]), atol=1e-4)


def test_other_classifiers_keep_their_own_predict_proba():
    pipeline = make_pipeline(CountVectorizer(), ComplementNB()).fit(["좋다", "싫다"], [1, 0])
    assert scorer(pipeline) == pipeline.predict_proba


def test_softmax_rows_sum_to_one_without_overflow():
    rows = softmax(np.array([[1000.0, 1001.0], [-5.0, -5.0]]))
    np.testing.assert_allclose(rows.sum(axis=1), 1.0)
    np.testing.assert_allclose(rows[1], [0.5, 0.5])
