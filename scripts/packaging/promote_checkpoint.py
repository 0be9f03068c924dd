"""Replace the committed sentiment_bert checkpoint by a better trained one.

    .venv/bin/python -m scripts.packaging.promote_checkpoint build/bert_4x256

The committed checkpoint is what `make serve` packs on a machine that cannot train for
hours, so it changes only for one that is verified (every artifact matches the hash its
training recorded), small enough to commit, and more accurate on ratings_test.txt than the
one it replaces.  The new manifest keeps a record of the one it replaced.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Sequence

from handlers.artifacts import (
    BERT_FILES,
    METADATA_FILE,
    TamperedArtifactError,
    load_verified_metadata,
    update_metadata,
)
from scripts.registry import BERT_CHECKPOINT

MAX_BYTES = 50 * 2**20  # what the repository carries for one checkpoint
REPLACED_KEYS = ("description", "command", "test_accuracy", "validation_accuracy", "created_at")


class NotBetterError(ValueError):
    """The candidate is not more accurate on the test set than the committed checkpoint."""


class TooLargeError(ValueError):
    """The candidate's files exceed what the repository carries."""


def promote(source: Path, target: Path = BERT_CHECKPOINT, force: bool = False) -> dict:
    """Copy `source`'s checkpoint files over `target`'s and return the new manifest."""
    candidate = load_verified_metadata(source, BERT_FILES)
    size = sum((source / name).stat().st_size for name in (*BERT_FILES, METADATA_FILE))
    if size > MAX_BYTES:
        raise TooLargeError(f"{source} holds {size / 2**20:.1f} MiB of checkpoint files; "
                            f"the committed one may hold {MAX_BYTES / 2**20:.0f} MiB")  # fmt: skip
    committed = (target / METADATA_FILE).exists()
    current = load_verified_metadata(target, BERT_FILES) if committed else {}
    new, old = candidate.get("test_accuracy", 0.0), current.get("test_accuracy", 0.0)
    if new <= old and not force:
        raise NotBetterError(f"{source} scores {new:.4f} on the test set, the committed "
                             f"checkpoint {old:.4f}: keeping the committed one")  # fmt: skip
    target.mkdir(parents=True, exist_ok=True)
    for stale in target.iterdir():
        if stale.is_file():
            stale.unlink()
    for name in (*BERT_FILES, METADATA_FILE):
        shutil.copy2(source / name, target / name)
    replaced = {key: current[key] for key in REPLACED_KEYS if key in current}
    return update_metadata(target, {"replaced": replaced} if replaced else {})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path, help="a train_bert or soup output directory")
    parser.add_argument("--target", type=Path, default=BERT_CHECKPOINT)
    parser.add_argument("--force", action="store_true", help="replace even a more accurate one")
    args = parser.parse_args(argv)
    try:
        metadata = promote(args.source, args.target, args.force)
    except (NotBetterError, TooLargeError, FileNotFoundError, TamperedArtifactError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    previous = metadata.get("replaced", {}).get("test_accuracy")
    print(f"{args.target} is now {args.source}: test accuracy {metadata['test_accuracy']:.4f}"
          + (f" (was {previous:.4f})" if previous is not None else ""))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
