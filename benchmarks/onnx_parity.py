"""sentiment_bert's two runtimes over the NSMC test set: ONNX Runtime against torch.

The archive's build step (scripts/packaging/bert_onnx.py) checks the export on a few sample
batches; this measures it on real reviews: largest probability difference, label
disagreements, accuracy and texts/s of each runtime, through the handler's own load path.

    .venv/bin/python -m benchmarks.onnx_parity                 # the whole NSMC test set
    .venv/bin/python -m benchmarks.onnx_parity --rows 2000     # a quicker sample
    .venv/bin/python -m benchmarks.onnx_parity --int8          # dynamic int8 against torch fp32

`--int8` measures the archive's `model.int8.onnx` (`runtime: onnx-int8`): what dynamic int8
quantization costs in accuracy and gains in speed, which decides the runtime model-config.yaml
serves.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml

from scripts.inprocess import load_registered, timed_probabilities
from scripts.nsmc import DataNotFoundError, read_test_reviews
from scripts.packaging.bert_onnx import TOLERANCE, export, quantize_int8
from scripts.packaging.build_archive import ensure_artifacts


def compare(
    model_dir: Path, texts: Sequence[str], labels: Sequence[int], batch_size: int,
    onnx_runtime: str = "onnx",
) -> dict:
    """An ONNX runtime of the handler against torch over `texts`: max difference,
    disagreements, accuracy and speed of each."""
    result: dict[str, Any] = {"texts": len(texts), "batch_size": batch_size}
    probabilities = {}
    for runtime in (onnx_runtime, "torch"):
        handler = load_registered("sentiment_bert", model_dir, runtime=runtime)
        assert handler.runtime == runtime, f"asked for {runtime}, got {handler.runtime}"
        probabilities[runtime], speed = timed_probabilities(handler, texts, batch_size)
        result[f"{runtime}_texts_per_s"] = round(speed, 1)
        predicted = probabilities[runtime].argmax(axis=1)
        result[f"{runtime}_accuracy"] = round(float((predicted == np.asarray(labels)).mean()), 6)
    onnx, torch_ = probabilities.values()
    result["max_abs_diff"] = float(np.abs(onnx - torch_).max())
    result["label_disagreements"] = int((onnx.argmax(axis=1) != torch_.argmax(axis=1)).sum())
    result["within_tolerance"] = result["max_abs_diff"] <= TOLERANCE
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--artifacts", type=Path, help="BERT dir (default: what the archive uses)")
    parser.add_argument("--data-dir", help="NSMC directory (default: $NSMC_DIR or data/nsmc)")
    parser.add_argument("--rows", type=int, help="first N test rows (default: all)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--int8", action="store_true", help="quantize the export (dynamic int8)")
    args = parser.parse_args(argv)

    try:
        texts, labels = read_test_reviews(args.data_dir, args.rows)
    except DataNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bert-onnx-") as tmp:
        model_dir = Path(tmp)
        source = args.artifacts or ensure_artifacts("sentiment_bert", args.data_dir)
        for item in source.iterdir():
            if item.is_file():
                shutil.copy2(item, model_dir / item.name)
        export(model_dir)
        if args.int8:
            quantize_int8(model_dir)
        result = compare(model_dir, texts, labels, args.batch_size,
                         "onnx-int8" if args.int8 else "onnx")  # fmt: skip
    print(yaml.safe_dump({"onnx": "dynamic int8" if args.int8 else "fp32", **result},
                         sort_keys=False).strip())  # fmt: skip
    return 0 if result["within_tolerance"] or args.int8 else 1


if __name__ == "__main__":
    sys.exit(main())
