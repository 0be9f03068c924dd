"""Model-call helpers shared by the handlers and the benchmark's reference app (no TorchServe).

Both fast-model recipes are linear in their n-gram features: the log-odds of "positive" is a
bias plus one term per n-gram.  `linear_log_odds` reads those weights from the fitted
pipeline, so explanations are exact per n-gram and one sparse product scores a batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import sklearn
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import MultinomialNB

# The texts come cleaned from handlers.contract and TF-IDF is finite: sklearn's parameter and
# finiteness checks cost ~0.5 ms per call (a third of a single-text prediction; 13 % of a served
# worker's samples at c=32 under py-spy) and change no number.
TRUSTED_INPUT = {"skip_parameter_validation": True, "assume_finite": True}
NB_METHOD = "naive-bayes log-odds: tfidf x (log P(ngram|positive) - log P(ngram|negative))"
NBSVM_METHOD = "nb-svm log-odds: tfidf x nb log-count ratio x logistic-regression weight"


class NaiveBayesScaling(BaseEstimator, TransformerMixin):
    """Scale each feature by its NB log-count ratio (Wang & Manning 2012, NB-SVM).

    Lives with the handlers because a pickled NB-SVM pipeline names this class: the worker
    must be able to import it from the archive."""

    def fit(self, features: sparse.spmatrix, labels: Sequence[int]) -> "NaiveBayesScaling":
        present = (features > 0).astype(np.float32)
        labels = np.asarray(labels)
        positive = 1 + np.asarray(present[labels == 1].sum(axis=0)).ravel()
        negative = 1 + np.asarray(present[labels == 0].sum(axis=0)).ravel()
        ratio = np.log(positive / positive.sum()) - np.log(negative / negative.sum())
        self.ratio_ = sparse.diags(ratio.astype(np.float32))
        return self

    def transform(self, features: sparse.spmatrix) -> sparse.spmatrix:
        return features @ self.ratio_


@dataclass(frozen=True)
class LinearLogOdds:
    """log-odds(positive) = bias + vectorizer(text) @ weights."""

    weights: np.ndarray
    bias: float
    method: str


def linear_log_odds(pipeline: Any) -> LinearLogOdds | None:
    """The pipeline's log-odds as weights on its vectorizer's features, where it is linear:
    [vectorizer, MultinomialNB] or [vectorizer, NaiveBayesScaling, LogisticRegression]."""
    steps = [step for _, step in pipeline.steps]
    model = steps[-1]
    if type(model) is MultinomialNB and len(steps) == 2:
        positive, negative = list(model.classes_).index(1), list(model.classes_).index(0)
        weights = model.feature_log_prob_[positive] - model.feature_log_prob_[negative]
        bias = model.class_log_prior_[positive] - model.class_log_prior_[negative]
        return LinearLogOdds(np.ascontiguousarray(weights), float(bias), NB_METHOD)
    if (type(model) is LogisticRegression and len(steps) == 3
            and isinstance(steps[1], NaiveBayesScaling) and len(model.classes_) == 2):  # fmt: skip
        sign = 1.0 if model.classes_[1] == 1 else -1.0  # LR's coef_ is for classes_[1]
        weights = sign * steps[1].ratio_.diagonal() * model.coef_[0]
        return LinearLogOdds(np.ascontiguousarray(weights), sign * float(model.intercept_[0]),
                             NBSVM_METHOD)  # fmt: skip
    return None


def softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (texts x classes) scores (logits or joint log-likelihoods)."""
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def scorer(pipeline: Any) -> Callable[[list[str]], np.ndarray]:
    """pipeline.predict_proba as one sparse product with contiguous weights, where linear.

    MultinomialNB scores `X @ feature_log_prob_.T`; that transpose is not C-contiguous, so
    scipy copies all (n_features x 2) weights (1.6 M char n-grams here) per call: ~80 % of
    a single-text prediction.  NB-SVM scales every feature, then multiplies: folding the
    scaling into the weights saves a sparse product.  Same numbers (to ~1e-9); other
    final estimators keep their own predict_proba.  sklearn's input checks are skipped
    (TRUSTED_INPUT): the same numbers, bit for bit.
    """
    linear = linear_log_odds(pipeline)
    if linear is None:
        return pipeline.predict_proba
    vectorizer = pipeline[0]
    weights, bias = linear.weights, linear.bias

    def predict_proba(texts: list[str]) -> np.ndarray:
        with sklearn.config_context(**TRUSTED_INPUT):
            log_odds = vectorizer.transform(texts) @ weights + bias
        return softmax(np.column_stack([np.zeros_like(log_odds), log_odds]))

    return predict_proba
