"""The distillation stage's pieces: NB-SVM scaling, the teacher ensemble, the transfer set."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from handlers.scoring import NaiveBayesScaling
from scripts.training.teachers import ensemble_proba, transfer_set, word_dropout_copies
from scripts.training.train_fast import nbsvm_pipeline


def test_nb_scaling_signs_follow_the_class_a_feature_appears_in():
    features = sparse.csr_matrix(np.array([[1, 0, 1], [1, 0, 1], [0, 1, 1], [0, 1, 1]], float))
    scaled = NaiveBayesScaling().fit(features, [1, 1, 0, 0]).transform(features).toarray()
    assert scaled[0, 0] > 0 and scaled[2, 1] < 0  # positive-only / negative-only features
    assert scaled[0, 2] == pytest.approx(0.0)  # a feature in both classes says nothing


def test_nbsvm_learns_a_toy_task():
    texts = ["정말 재밌다", "재밌어요 최고", "최고의 영화", "지루하다 최악", "최악의 영화", "지루해요"] * 5
    labels = [1, 1, 1, 0, 0, 0] * 5
    model = nbsvm_pipeline().fit(texts, labels)
    assert list(model.predict(["재밌다 최고", "지루한 최악"])) == [1, 0]


def test_ensemble_is_a_normalised_geometric_mean_in_any_chunking():
    def sure(texts: list[str]) -> np.ndarray:
        return np.tile([0.1, 0.9], (len(texts), 1))

    def unsure(texts: list[str]) -> np.ndarray:
        return np.tile([0.6, 0.4], (len(texts), 1))

    texts = [f"t{i}" for i in range(7)]
    whole = ensemble_proba([sure, unsure], texts)
    chunked = ensemble_proba([sure, unsure], texts, chunk=3)
    expected = np.sqrt([0.1 * 0.6, 0.9 * 0.4])
    assert whole == pytest.approx(np.tile(expected / expected.sum(), (7, 1)), abs=1e-6)
    assert chunked == pytest.approx(whole)
    assert ensemble_proba([sure, sure], texts) == pytest.approx(sure(texts), abs=1e-6)


def test_transfer_set_drops_labelled_and_test_texts_and_duplicates():
    unlabeled = ["a", "b", "test review", "a", "train review", "c"]
    assert transfer_set(unlabeled, ["train review"], ["test review"]) == ["a", "b", "c"]


def test_word_dropout_copies_keep_words_in_order_and_repeat_with_the_seed():
    texts = ["정말 너무 재밌는 영화 였다 진짜", "최악", "그냥 그래요"]
    variants = word_dropout_copies(texts, copies=50, seed=1)
    assert variants == word_dropout_copies(texts, copies=50, seed=1)
    assert len(variants) == 100  # one-word texts have no variant
    for variant in variants:
        words = variant.split()
        source = next(t.split() for t in texts if set(words) <= set(t.split()))
        assert words and words == [w for w in source if w in words]  # a subsequence
    assert any(len(v.split()) < 6 for v in variants[::2])  # words were dropped
