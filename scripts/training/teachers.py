"""Teachers for distilling into sentiment_bert: n-gram models plus the fine-tuned BERT itself.

Without a GPU, masked-LM pre-training on 2 cores cannot make a small BERT beat the
character n-gram models. Their errors differ from BERT's, though, and an ensemble of
the three is better than each (measured: NB 87.5 %, NB-SVM 1-5-grams 88.1 %, BERT 86.0 %,
their geometric mean 88.6 %; NB-SVM is now the served fast model, with 1-7-grams). Its soft labels on the 490k unlabeled reviews give the BERT
student four times as many training examples as the labelled set alone.
"""

from __future__ import annotations

import random
from typing import Callable, Sequence

import numpy as np

from handlers.scoring import scorer, softmax
from scripts.training.train_fast import char_ngram_pipeline, nbsvm_pipeline

Predict = Callable[[list[str]], np.ndarray]

#: the n-gram members by name: char NB (the fast model's earlier recipe), NB-SVM (its current)
NGRAM_TEACHERS = {"char-nb": char_ngram_pipeline, "nbsvm": nbsvm_pipeline}
DEFAULT_NGRAM_TEACHERS = ("char-nb", "nbsvm")


def check_members(members: Sequence[str]) -> Sequence[str]:
    """`members` if each names an n-gram teacher (and there is one); ValueError if not."""
    if not members or set(members) - set(NGRAM_TEACHERS):
        raise ValueError(f"n-gram teachers are {', '.join(NGRAM_TEACHERS)}; got {list(members)}")
    return members


def fit_ngram_teachers(
    texts: Sequence[str], labels: Sequence[int], members: Sequence[str] = DEFAULT_NGRAM_TEACHERS
) -> list[Predict]:
    """The named n-gram members, each fitted on the labelled training set.

    Both by default (every committed checkpoint's teachers). On validation, NB-SVM + the
    committed BERT alone scored 88.05 %, with char NB as a third member 87.78 % (2026-12-03,
    docs/models/sentiment_bert.md): `--ngram-teachers nbsvm` tries that ensemble."""
    teachers = []
    for name in check_members(members):
        pipeline = NGRAM_TEACHERS[name]()
        pipeline.fit(list(texts), list(labels))
        teachers.append(scorer(pipeline))
    return teachers


def geometric_mean(probabilities: Sequence[np.ndarray]) -> np.ndarray:
    """Normalised geometric mean of the members' (texts x 2) probabilities, equal weights."""
    return softmax(np.mean([np.log(np.clip(p, 1e-7, 1.0)) for p in probabilities], axis=0))


def ensemble_proba(
    teachers: Sequence[Predict], texts: Sequence[str], chunk: int = 50_000
) -> np.ndarray:
    """The teachers' geometric mean (equal weights, chosen a priori), in chunks of texts."""
    out = np.zeros((len(texts), 2), dtype=np.float32)
    for start in range(0, len(texts), chunk):
        part = list(texts[start : start + chunk])
        out[start : start + len(part)] = geometric_mean([t(part) for t in teachers])
    return out


def transfer_set(
    unlabeled: Sequence[str], labelled: Sequence[str], test: Sequence[str]
) -> list[str]:
    """Unlabeled reviews, deduplicated, without any text of the labelled or the test set.

    Texts of the test set are left out so that no teacher's answer on a test review is
    taught to the student (1.8k of the unlabeled lines are test reviews verbatim).
    """
    seen = set(labelled) | set(test)
    return [t for t in dict.fromkeys(unlabeled) if t not in seen]


def word_dropout_copies(
    texts: Sequence[str], copies: int, seed: int = 0, drop: float = 0.2
) -> list[str]:
    """`copies` variants of each text of two or more words, each word left out with
    probability `drop` (at least one kept).

    The teachers label these too, so the student learns their answers on texts near the
    reviews, not only on the reviews (data augmentation for distillation, as in TinyBERT).
    """
    rng = random.Random(seed)
    variants = []
    for _ in range(copies):
        for text in texts:
            words = text.split()
            if len(words) < 2:
                continue
            kept = [word for word in words if rng.random() >= drop]
            variants.append(" ".join(kept or [rng.choice(words)]))
    return variants
