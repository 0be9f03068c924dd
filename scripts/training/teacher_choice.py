"""Which members make the best teacher ensemble, judged on the validation split only.

    .venv/bin/python -m scripts.training.teacher_choice fast build/bert_t2 build/bert_long/work

Distillation teaches the student the equal-weight geometric mean of its teachers
(`teachers.geometric_mean`), and the student ends a few tenths below it, so the teacher
ensemble is the ceiling of a run: this scores every combination of two or more candidate
members by that same rule, on validation, before hours of labelling and distillation.
A member is `fast` (the packaged sentiment_fast), a servable checkpoint directory (both
scored by the served handler's code and cached in build/evaluate/, `evaluate.score`), or
a run's `work` directory, whose fine-tuned state (`finetune.pt`, before distillation) is
the member `train_bert --teacher ...,self` would add.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from handlers.artifacts import METADATA_FILE, sha256_of
from scripts.nsmc import resolve_data_dir
from scripts.registry import find_artifacts
from scripts.training.evaluate import CACHE, score, split_rows
from scripts.training.pretraining import saved_encoder
from scripts.training.teachers import geometric_mean
from scripts.training.train_bert import predict_proba

FAST = "fast"
MAX_LEN = 64  # every CPU preset's; the fine-tuned state does not record it


class UnknownMemberError(ValueError):
    """A candidate that is neither `fast`, a servable checkpoint nor a run's work directory."""


def finetuned_probabilities(work_dir: Path, texts: list[str], max_len: int = MAX_LEN) -> np.ndarray:
    """A run's fine-tuned model (its pre-trained encoder's config, `finetune.pt`'s weights) on
    `texts`; cached in build/evaluate/ by the state's hash."""
    state = work_dir / "finetune.pt"
    key = hashlib.sha256(f"{sha256_of(state)}-{len(texts)}-{max_len}".encode()).hexdigest()[:16]
    cached = CACHE / f"finetuned-validation-{key}.npy"
    if cached.exists():
        return np.load(cached)
    config = AutoConfig.from_pretrained(saved_encoder(work_dir), num_labels=2)
    model = AutoModelForSequenceClassification.from_config(config)
    model.load_state_dict(torch.load(state, weights_only=False)["model"])
    tokenizer = AutoTokenizer.from_pretrained(work_dir / "tokenizer")
    print(f"scoring {len(texts):,} validation reviews with {state} ...", flush=True)
    probabilities = predict_proba(model.eval(), tokenizer, texts, max_len, torch.device("cpu"))
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(cached, probabilities)
    return probabilities


def member_probabilities(member: str, data_dir: Path) -> np.ndarray:
    """One candidate's raw probabilities on the validation split (columns in LABELS order)."""
    if member == FAST:
        return score("sentiment_fast", find_artifacts("sentiment_fast"), data_dir, "validation").raw
    path = Path(member)
    if (path / METADATA_FILE).exists():
        return score("sentiment_bert", path, data_dir, "validation").raw
    if (path / "finetune.pt").exists():
        return finetuned_probabilities(path, split_rows(data_dir, "validation")[1])
    raise UnknownMemberError(f"{member}: not {FAST!r}, a checkpoint with {METADATA_FILE} "
                             "nor a run's work directory with finetune.pt")  # fmt: skip


def rank_ensembles(
    probabilities: dict[str, np.ndarray], labels: np.ndarray
) -> list[tuple[tuple[str, ...], float]]:
    """Each member alone and every combination of them, best validation accuracy first."""
    names = list(probabilities)
    combos = [c for size in range(1, len(names) + 1) for c in itertools.combinations(names, size)]
    scored = [(c, float(np.mean(geometric_mean([probabilities[m] for m in c]).argmax(1) == labels)))
              for c in combos]  # fmt: skip
    return sorted(scored, key=lambda item: -item[1])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("members", nargs="+", help=f"{FAST}, checkpoint dirs, runs' work dirs")
    parser.add_argument("--data-dir", help="NSMC directory (default: $NSMC_DIR or data/nsmc)")
    args = parser.parse_args(argv)
    data_dir = resolve_data_dir(args.data_dir)
    try:
        probabilities = {m: member_probabilities(m, data_dir) for m in args.members}
    except UnknownMemberError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    labels = split_rows(data_dir, "validation")[2]
    print("| members (equal-weight geometric mean) | validation accuracy |\n|---|---|")
    for combo, accuracy in rank_ensembles(probabilities, labels):
        print(f"| {' + '.join(combo)} | {100 * accuracy:.2f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
