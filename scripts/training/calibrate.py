"""Fit a model's calibration on the validation split and store it in its metadata.json.

Re-runnable on any artifact directory, in place: the committed BERT checkpoint now,
a retrained one later (train_fast and train_bert call `calibrate` at their end).

    python -m scripts.training.calibrate sentiment_bert \
        --artifacts archive/sentiment_bert/checkpoint
    python -m scripts.training.calibrate sentiment_fast --artifacts build/sentiment_fast

The model is loaded through its own handler (hash-checked, as a worker loads it),
so the calibration is fitted on exactly the probabilities the server computes.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from handlers.artifacts import METADATA_FILE, update_metadata
from handlers.calibration import ECE_BINS, fit, log_odds, reliability
from scripts.inprocess import load_registered
from scripts.nsmc import ensure_files, read_labelled, resolve_data_dir, run_cli

#: offline scoring only: BERT runs length-sorted groups of 64 (answers do not depend on it)
SCORING_OVERRIDES: Mapping[str, Mapping[str, Any]] = {"sentiment_bert": {"pad_group": 64}}


def load_model(name: str, artifacts: Path) -> Any:
    """The model's served handler on `artifacts`, configured as its archive configures it."""
    return load_registered(name, artifacts, **SCORING_OVERRIDES.get(name, {}))


def raw_probabilities(handler: Any, texts: Sequence[str], batch_size: int = 1024) -> np.ndarray:
    """The handler's uncalibrated (p_negative, p_positive) rows for any number of texts."""
    rows = [handler.predict_proba(list(texts[i : i + batch_size]))
            for i in range(0, len(texts), batch_size)]  # fmt: skip
    return np.concatenate([np.asarray(r, dtype=np.float64) for r in rows])


def calibrate(
    name: str, artifacts: Path, data_dir: Path, max_rows: int | None = None
) -> dict[str, Any]:
    """Fit on the validation split, record the fit and its ECE in metadata.json, return it."""
    train_path, _ = ensure_files(data_dir)
    texts, labels = read_labelled(train_path, max_rows, part="validation")
    template_log = logging.getLogger("handlers.sentiment_handler")
    level = template_log.level
    template_log.setLevel(logging.ERROR)  # its "no calibration" warning: that is why we are here
    try:
        handler = load_model(name, artifacts)
    finally:
        template_log.setLevel(level)
    raw = raw_probabilities(handler, texts)
    fitted = fit(log_odds(raw), labels)
    before, after = reliability(raw, labels).ece, reliability(fitted.apply(raw), labels).ece
    metadata = json.loads((artifacts / METADATA_FILE).read_text(encoding="utf-8"))
    record = {
        **fitted.to_json(),
        "fitted_on": f"validation split of {train_path.name} (scripts.nsmc.read_labelled)",
        "rows": len(texts),
        # train_fast and train_bert fit on part="fit"; a model trained on every row has seen
        # these reviews
        "validation_seen_in_training": metadata.get("train_part") != "fit",
        f"validation_ece_{ECE_BINS}_bins_before": round(before, 4),
        f"validation_ece_{ECE_BINS}_bins_after": round(after, 4),
        "validation_accuracy": round(float(np.mean(raw.argmax(1) == np.asarray(labels))), 4),
    }
    update_metadata(artifacts, {"calibration": record})
    print(f"{name}: calibration {fitted.method} scale {fitted.scale:.4f} shift {fitted.shift:+.4f} "
          f"on {len(texts):,} validation reviews; ECE {before:.4f} -> {after:.4f}; "
          f"wrote {artifacts / 'metadata.json'}")  # fmt: skip
    return record


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", choices=["sentiment_fast", "sentiment_bert"])
    parser.add_argument("--artifacts", type=Path, required=True, help="model dir, updated in place")
    parser.add_argument("--data-dir", help="NSMC directory (default: $NSMC_DIR or data/nsmc)")
    args = parser.parse_args(argv)
    return run_cli(lambda: calibrate(args.model, args.artifacts, resolve_data_dir(args.data_dir)))


if __name__ == "__main__":
    sys.exit(main())
