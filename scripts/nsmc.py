"""Finding, fetching and reading NSMC-format data (`id<TAB>document<TAB>label`)."""

from __future__ import annotations

import os
import sys
import urllib.request
import zlib
from pathlib import Path
from typing import Callable, Sequence

from handlers.text import clean_text

DEFAULT_DATA_DIR = Path("data/nsmc")
TRAIN_FILE = "ratings_train.txt"
TEST_FILE = "ratings_test.txt"
UNLABELED_FILE = "unlabeled.txt"
OFFICIAL_URL = "https://raw.githubusercontent.com/e9t/nsmc/master/{name}"
#: 1 in VALIDATION_EVERY training reviews (by a hash of its id: ~10k of 150k) is held out of
#: every model's fitting, so calibration, cascade thresholds and epochs are chosen on reviews no
#: model has seen; ratings_test.txt is only for the final figure.
VALIDATION_EVERY = 15


class DataNotFoundError(FileNotFoundError):
    """The data files are absent and could not be downloaded."""


def resolve_data_dir(flag: str | os.PathLike | None = None) -> Path:
    """--data-dir flag, else $NSMC_DIR, else data/nsmc/."""
    return Path(flag or os.environ.get("NSMC_DIR") or DEFAULT_DATA_DIR)


def ensure_files(data_dir: Path, names: Sequence[str] = (TRAIN_FILE, TEST_FILE)) -> list[Path]:
    """Paths of the labelled files, downloading the official ones where absent."""
    paths = [data_dir / name for name in names]
    missing = [p for p in paths if not p.exists()]
    for path in missing:
        url = OFFICIAL_URL.format(name=path.name)
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            print(f"{path} not found; downloading {url}")
            urllib.request.urlretrieve(url, path)
        except OSError as err:
            path.unlink(missing_ok=True)
            raise DataNotFoundError(
                f"{path} is missing and the download from {url} failed ({err}). Put "
                f"{', '.join(names)} (NSMC format: id<TAB>document<TAB>label, with a header) in "
                f"{data_dir}/, or point --data-dir / NSMC_DIR at the directory holding them "
                f"(in this environment: NSMC_DIR=../shared/nsmc)."
            ) from None
    return paths


Labelled = tuple[list[str], list[int]]


def is_validation(review_id: str) -> bool:
    """Is this training review in the held-out validation split? Stable across runs/machines."""
    return zlib.crc32(review_id.encode("utf-8")) % VALIDATION_EVERY == 0


def read_labelled(
    path: Path, max_rows: int | None = None, part: str | None = None
) -> Labelled:
    """Cleaned texts and 0/1 labels of an NSMC TSV; rows with an empty document are skipped.

    Cleaned with the handlers' own `clean_text`, so every model trains on text exactly as
    it will see it when served.  `part`: "fit" (training rows outside the validation
    split), "validation" (the held-out rows), or None (every row).
    """
    if part not in (None, "fit", "validation"):
        raise ValueError(f"part must be None, 'fit' or 'validation', got {part!r}")
    texts: list[str] = []
    labels: list[int] = []
    with open(path, encoding="utf-8") as handle:
        next(handle)  # header
        for line in handle:
            review_id, document, label = line.rstrip("\n").split("\t")
            if part is not None and is_validation(review_id) != (part == "validation"):
                continue
            if document:
                texts.append(clean_text(document))
                labels.append(int(label))
            if max_rows is not None and len(texts) >= max_rows:
                break
    return texts, labels



def read_test_reviews(data_dir: str | os.PathLike | None, max_rows: int | None = None) -> Labelled:
    """The test file's first `max_rows` reviews, cleaned, from `data_dir` (flag, $NSMC_DIR or
    the default); DataNotFoundError, saying how to get it, where it is missing."""
    (test_file,) = ensure_files(resolve_data_dir(data_dir), [TEST_FILE])
    return read_labelled(test_file, max_rows)

def run_cli(train: Callable[[], object]) -> int:
    """Run a training entry point: missing data is one line on stderr and exit 2, no traceback."""
    try:
        train()
    except DataNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
