"""Model-call helpers shared by the handlers and the benchmark's reference app (no TorchServe)."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from sklearn.naive_bayes import MultinomialNB


def softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (texts x classes) scores (logits or joint log-likelihoods)."""
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def scorer(pipeline: Any) -> Callable[[list[str]], np.ndarray]:
    """pipeline.predict_proba, minus a copy of the whole weight matrix on every call.

    MultinomialNB scores `X @ feature_log_prob_.T`; that transpose is not C-contiguous, so
    scipy copies all (n_features x 2) weights (1.6 M char n-grams here) per call: ~80 % of
    a single-text prediction.  Keeping a contiguous copy gives the same numbers (to ~1e-14).
    Other final estimators keep their own predict_proba.
    """
    *_, classifier = pipeline.steps
    model = classifier[1]
    if type(model) is not MultinomialNB:
        return pipeline.predict_proba
    features = pipeline[:-1]
    weights = np.ascontiguousarray(model.feature_log_prob_.T)
    prior = model.class_log_prior_

    def predict_proba(texts: list[str]) -> np.ndarray:
        return softmax(features.transform(texts) @ weights + prior)

    return predict_proba
