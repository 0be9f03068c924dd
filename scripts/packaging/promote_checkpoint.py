"""Replace the committed sentiment_bert checkpoint by one that is better on validation.

    .venv/bin/python -m scripts.packaging.promote_checkpoint build/bert_4x256 --data-dir DIR

The committed checkpoint is what `make serve` packs on a machine that cannot train for
hours, so it changes only for one that is verified (every artifact matches the hash its
training recorded), small enough to commit, and better on the validation split of
ratings_train.txt than the one it replaces: both are scored there with the served handler
and the calibration each ships (scripts.training.evaluate.score, cached in build/evaluate/),
and the reviews only one of them gets right decide, by an exact two-sided binomial (sign /
McNemar) test.  ratings_test.txt gives the final figure and never decides: a choice made on
the test set makes its figure optimistic.  The new manifest records the decision under
`promotion` and the checkpoint it replaced under `replaced`.

`--half` commits the weights in fp16, half the bytes (a 6 x 256 is 52 MB in fp32, over the
limit); the handler, the ONNX export and fine-tuning load them in float32
(handlers/bert_weights.py).  The fp16 copy is what is scored on validation and committed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from scipy.stats import binomtest

from handlers.artifacts import (
    BERT_COMMON_FILES,
    BERT_FILES,
    METADATA_FILE,
    TamperedArtifactError,
    load_verified_metadata,
    update_metadata,
    write_metadata,
)
from handlers.bert_weights import load_classifier
from scripts.nsmc import resolve_data_dir
from scripts.registry import BERT_CHECKPOINT
from scripts.training.evaluate import score

MODEL = "sentiment_bert"
MAX_BYTES = 50 * 2**20  # what the repository carries for one checkpoint
ALPHA = 0.05
REPLACED_KEYS = ("description", "command", "test_accuracy", "validation_accuracy", "created_at")


class NotBetterError(ValueError):
    """The candidate is not significantly better on validation than the committed checkpoint."""


class TooLargeError(ValueError):
    """The candidate's files exceed what the repository carries."""


@dataclass(frozen=True)
class Paired:
    """Two models' answers on the same reviews, reduced to what a paired test needs."""

    rows: int
    accuracy_new: float
    accuracy_old: float
    right_only_new: int  # b: reviews only the candidate gets right
    right_only_old: int  # c: reviews only the committed one gets right
    p_value: float  # exact two-sided binomial on b of b + c, 1.0 when b + c == 0

    def better(self, alpha: float) -> bool:
        """More reviews won than lost, and not plausibly by chance at level `alpha`."""
        return self.right_only_new > self.right_only_old and self.p_value <= alpha

    def record(self, alpha: float, forced: bool = False) -> dict[str, Any]:
        """The manifest's `promotion` entry: what the decision was made on."""
        return {"decided_on": "validation", "rows": self.rows,
                "validation_accuracy_new": self.accuracy_new,
                "validation_accuracy_old": self.accuracy_old,
                "right_only_new": self.right_only_new, "right_only_old": self.right_only_old,
                "p_value": self.p_value, "alpha": alpha, "forced": forced}  # fmt: skip

    def describe(self, alpha: float) -> str:
        return (f"validation accuracy {self.accuracy_new:.4f} against the committed "
                f"{self.accuracy_old:.4f} on {self.rows:,} reviews; right only with the "
                f"candidate b = {self.right_only_new}, only with the committed c = "
                f"{self.right_only_old}, exact binomial p = {self.p_value:.4g} "
                f"(alpha {alpha:g})")  # fmt: skip


def paired_comparison(new_right: Sequence[bool], old_right: Sequence[bool]) -> Paired:
    """Compare two models right/wrong on the same reviews: only the discordant ones count,
    so a gain is judged against the noise of those reviews, not of the whole split."""
    new, old = np.asarray(new_right, dtype=bool), np.asarray(old_right, dtype=bool)
    if new.shape != old.shape or new.ndim != 1:
        raise ValueError(f"paired answers must be on the same reviews: {new.shape} != {old.shape}")
    b, c = int(np.sum(new & ~old)), int(np.sum(old & ~new))
    p_value = float(binomtest(b, b + c, 0.5).pvalue) if b + c else 1.0
    rows = len(new)
    return Paired(rows, float(new.mean()) if rows else 0.0, float(old.mean()) if rows else 0.0,
                  b, c, p_value)  # fmt: skip


def validation_right(artifacts: Path, data_dir: Path) -> np.ndarray:
    """Which validation reviews the served handler on `artifacts` labels right, with the
    calibration the checkpoint ships (the shift can move a label whose log-odds are ~0)."""
    scored = score(MODEL, artifacts, data_dir, "validation")
    return scored.calibrated.argmax(axis=1) == scored.labels


def check_size(source: Path) -> None:
    size = sum((source / name).stat().st_size for name in (*BERT_FILES, METADATA_FILE))
    if size > MAX_BYTES:
        raise TooLargeError(f"{source} holds {size / 2**20:.1f} MiB of checkpoint files; "
                            f"the committed one may hold {MAX_BYTES / 2**20:.0f} MiB (--half "
                            "stores the weights in fp16, half the bytes)")  # fmt: skip


def halved(source: Path, out: Path) -> Path:
    """A copy of the verified checkpoint `source` with its weights stored in fp16 and a manifest
    that hashes the new files and says so (`weights_stored`)."""
    metadata = load_verified_metadata(source, BERT_FILES)
    out.mkdir(parents=True, exist_ok=True)
    for name in BERT_COMMON_FILES:  # not the weights: save_pretrained writes them
        shutil.copy2(source / name, out / name)
    load_classifier(source).to(torch.float16).save_pretrained(out)  # weights and config.json
    metadata.pop("artifact_sha256")
    write_metadata(out, {**metadata, "weights_stored": "float16"}, BERT_FILES)
    return out


def decide(source: Path, target: Path, data_dir: Path, alpha: float, force: bool) -> dict:
    """The `promotion` record if `source` may replace `target`; NotBetterError if not."""
    paired = paired_comparison(validation_right(source, data_dir),
                               validation_right(target, data_dir))  # fmt: skip
    if paired.better(alpha):
        return paired.record(alpha)
    if not force:
        raise NotBetterError(f"{source} is not better on validation: {paired.describe(alpha)}; "
                             "keeping the committed one")  # fmt: skip
    print(f"--force: replacing although not better on validation ({paired.describe(alpha)})")
    return paired.record(alpha, forced=True)


def replace(source: Path, target: Path, entries: dict) -> dict:
    """Put `source`'s checkpoint files in `target` (nothing else left there), add `entries`."""
    target.mkdir(parents=True, exist_ok=True)
    for stale in target.iterdir():
        if stale.is_file():
            stale.unlink()
    for name in (*BERT_FILES, METADATA_FILE):
        shutil.copy2(source / name, target / name)
    return update_metadata(target, entries)


def promote(
    source: Path,
    target: Path = BERT_CHECKPOINT,
    data_dir: Path | str | None = None,
    alpha: float = ALPHA,
    force: bool = False,
    half: bool = False,
) -> dict:
    """Copy `source`'s checkpoint files (`half`: an fp16 copy of them) over `target`'s and
    return the new manifest."""
    if half:  # halved verifies `source` before it copies it
        with tempfile.TemporaryDirectory(prefix="promote-fp16-") as stage:
            return promote(halved(source, Path(stage)), target, data_dir, alpha, force)
    load_verified_metadata(source, BERT_FILES)
    check_size(source)
    if not (target / METADATA_FILE).exists():  # nothing committed yet: nothing to beat
        return replace(source, target, {"promotion": {"decided_on": "no committed checkpoint"}})
    current = load_verified_metadata(target, BERT_FILES)
    promotion = decide(source, target, resolve_data_dir(data_dir), alpha, force)
    entries: dict[str, Any] = {"promotion": promotion}
    replaced = {key: current[key] for key in REPLACED_KEYS if key in current}
    if replaced:
        entries["replaced"] = replaced
    return replace(source, target, entries)


def alpha_value(text: str) -> float:
    """--alpha as a level: 0 would refuse every candidate (p is never 0), above 1 means nothing."""
    alpha = float(text)
    if not 0 < alpha <= 1:
        raise argparse.ArgumentTypeError(f"alpha must be in (0, 1], got {text}")
    return alpha


def summary(metadata: dict, source: Path, target: Path) -> str:
    """What was decided on, then the test accuracy as the final figure (it decided nothing)."""
    promotion = metadata["promotion"]
    if "p_value" in promotion:
        decided = (f"validation {promotion['validation_accuracy_old']:.4f} -> "
                   f"{promotion['validation_accuracy_new']:.4f}, b = {promotion['right_only_new']}"
                   f", c = {promotion['right_only_old']}, p = {promotion['p_value']:.4g}"
                   + (", forced" if promotion.get("forced") else ""))  # fmt: skip
    else:
        decided = promotion["decided_on"]
    final = metadata.get("test_accuracy")
    test = f"; final figure: test accuracy {final:.4f}" if final is not None else ""
    return f"{target} is now {source} ({decided}){test}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path, help="a train_bert or soup output directory")
    parser.add_argument("--target", type=Path, default=BERT_CHECKPOINT,
                        help="the checkpoint directory to replace (default: the committed one)")
    parser.add_argument("--data-dir", help="NSMC directory (default: $NSMC_DIR or data/nsmc)")
    parser.add_argument("--alpha", type=alpha_value, default=ALPHA,
                        help="largest p-value of the paired test on validation that "
                             f"promotes (default {ALPHA}); --alpha 1 accepts any validation "
                             "gain")  # fmt: skip
    parser.add_argument("--force", action="store_true",
                        help="replace even when not better on validation (to restore one); "
                             "it says that it overrode")  # fmt: skip
    parser.add_argument("--half", action="store_true",
                        help="commit the weights in fp16 (half the bytes; served in float32); "
                             "the fp16 copy is what is scored and committed")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        metadata = promote(args.source, args.target, args.data_dir, args.alpha, args.force,
                           args.half)  # fmt: skip
    except (NotBetterError, TooLargeError, FileNotFoundError, TamperedArtifactError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(summary(metadata, args.source, args.target))
    return 0


if __name__ == "__main__":
    sys.exit(main())
