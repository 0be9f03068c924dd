"""sentiment_bert's handler on a GPU: the torch runtime with fp16 off and on, against CPU fp32.

Issue 29's GPU track asks for the handler run once on a lent GPU. Each setting loads the
handler through its own load path, with the Context a TorchServe GPU worker gets (gpu_id 0),
and reports accuracy, texts/s in batches, and how far its probabilities and labels are from
fp32 on the CPU (fp16 rounds every activation). Where no GPU is visible, the GPU rows say so
and only the CPU row is measured: that is how the suite runs it.

    .venv/bin/python -m benchmarks.gpu_handler --rows 2000          # here: the CPU row
    python3 -m benchmarks.gpu_handler --data-dir /tmp/nsmc --out "$OUT/gpu_handler.yaml"   # there

scripts/training/gpu_piece.sh runs it after its training piece (docs/models/sentiment_bert.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import yaml

from scripts.inprocess import load_registered, timed_probabilities
from scripts.nsmc import DataNotFoundError, read_test_reviews
from scripts.registry import BERT_CHECKPOINT

# (setting, the worker's gpu_id, handler.fp16); the first is the reference the others are
# compared with
SETTINGS: tuple[tuple[str, int | None, bool], ...] = (
    ("cpu fp32", None, False),
    ("gpu fp32", 0, False),
    ("gpu fp16", 0, True),
)


def measure(
    model_dir: Path, texts: Sequence[str], labels: Sequence[int], batch_size: int
) -> list[dict[str, Any]]:
    """One row per setting: device, accuracy, texts/s, and the difference from the first row."""
    rows: list[dict[str, Any]] = []
    reference: np.ndarray | None = None
    for setting, gpu_id, fp16 in SETTINGS:
        if gpu_id is not None and not torch.cuda.is_available():
            rows.append({"setting": setting, "skipped": "no CUDA device visible"})
            continue
        handler = load_registered("sentiment_bert", model_dir, gpu_id, runtime="torch", fp16=fp16)
        expected = "cpu" if gpu_id is None else "cuda"
        assert handler.device.type == expected, f"{setting}: the handler chose {handler.device}"
        probabilities, speed = timed_probabilities(handler, texts, batch_size)
        predicted = probabilities.argmax(axis=1)
        row: dict[str, Any] = {
            "setting": setting,
            "device": torch.cuda.get_device_name(gpu_id) if gpu_id is not None else "cpu",
            "accuracy": round(float((predicted == np.asarray(labels)).mean()), 6),
            "texts_per_s": round(speed, 1),
        }
        if reference is None:
            reference = probabilities
        else:
            row["max_abs_diff_vs_cpu"] = float(np.abs(probabilities - reference).max())
            row["label_disagreements_vs_cpu"] = int((predicted != reference.argmax(axis=1)).sum())
        rows.append(row)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--artifacts", type=Path, default=BERT_CHECKPOINT,
                        help="BERT checkpoint dir (default: the committed one)")  # fmt: skip
    parser.add_argument("--data-dir", help="NSMC directory (default: $NSMC_DIR or data/nsmc)")
    parser.add_argument("--rows", type=int, help="first N test rows (default: all)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", type=Path, help="also write the result here (YAML)")
    args = parser.parse_args(argv)
    try:
        texts, labels = read_test_reviews(args.data_dir, args.rows)
    except DataNotFoundError as err:
        parser.error(str(err))  # exits 2, after the usage line
    result = {"texts": len(texts), "batch_size": args.batch_size, "torch": str(torch.__version__),
              "settings": measure(args.artifacts, texts, labels, args.batch_size)}  # fmt: skip
    report = yaml.safe_dump(result, sort_keys=False).strip()
    print(report)
    if args.out:
        args.out.write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
