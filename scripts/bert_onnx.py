"""sentiment_bert for ONNX Runtime: exported when the archive is built, checked against torch.

`export` runs inside scripts/build_archive.py on the staged copy of the
artifacts: it writes model.onnx beside model.safetensors (which stays, for the
torch runtime and explanations), checks both on sample batches with padding,
and records the file's SHA-256 in metadata.json like every other artifact.

    python -m scripts.bert_onnx                 # parity over the whole NSMC test set
    python -m scripts.bert_onnx --rows 2000     # a quicker sample
"""

from __future__ import annotations

import argparse
import inspect
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import yaml

from handlers.artifacts import BERT_ONNX_FILE, add_artifact
from handlers.scoring import softmax
from scripts.nsmc import TEST_FILE, DataNotFoundError, ensure_files, read_labelled, resolve_data_dir

TOLERANCE = 1e-4  # max |p_onnx - p_torch| accepted, per probability
OPSET = 17
# Different lengths, so the export traces the padded (attention-masked) path.
SAMPLE = [
    "정말 재밌게 잘봤습니다! 배우들 연기도 좋고 음악도 최고",
    "최악",
    "그냥 그랬다 ㅋㅋ 시간 때우기용으로는 나쁘지 않음",
    "발연기 도저히 못보겠다 진짜 이렇게 연기를 못할거라곤 상상도 못했네",
]


def _session(path: Path) -> Any:
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _sample_difference(model: Any, tokenizer: Any, path: Path) -> float:
    """Max probability difference torch vs ONNX on SAMPLE, batched (padded) and one by one."""
    session = _session(path)
    inputs = [node.name for node in session.get_inputs()]
    worst = 0.0
    for batch in [SAMPLE, *([text] for text in SAMPLE)]:
        encoded = tokenizer(batch, padding=True, return_tensors="pt")
        with torch.inference_mode():
            expected = torch.softmax(model(**encoded).logits, dim=-1).numpy()
        (logits,) = session.run(["logits"], {name: encoded[name].numpy() for name in inputs})
        got = softmax(logits)
        worst = max(worst, float(np.abs(expected - got).max()))
    return worst


def forward_inputs(model: Any, encoded: Any) -> list[str]:
    """The tokenizer's outputs that forward() takes, in forward()'s order.

    The exporter orders the graph's inputs as forward()'s signature does (input_ids,
    attention_mask, token_type_ids for BERT), whatever order the tokenizer returns them in;
    naming them in the tokenizer's order silently swaps two inputs.  Outputs forward()
    does not take (DistilBERT's tokenizer may still return token_type_ids) are left out.
    """
    return [name for name in inspect.signature(model.forward).parameters if name in encoded]


def export(model_dir: Path) -> dict:
    """Write model_dir/model.onnx, prove it matches torch on SAMPLE, record it in metadata.json."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    encoded = tokenizer(SAMPLE[:2], padding=True, return_tensors="pt")
    names = forward_inputs(model, encoded)
    encoded = {name: encoded[name] for name in names}
    axes = {name: {0: "batch", 1: "tokens"} for name in names}
    path = model_dir / BERT_ONNX_FILE
    with warnings.catch_warnings():  # the TorchScript exporter's tracer warnings
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (encoded,),
            str(path),
            input_names=names,
            output_names=["logits"],
            dynamic_axes={**axes, "logits": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    difference = _sample_difference(model, tokenizer, path)
    if difference > TOLERANCE:
        path.unlink()
        raise RuntimeError(f"ONNX export differs from torch by {difference:.2e} (> {TOLERANCE})")
    return add_artifact(
        model_dir,
        BERT_ONNX_FILE,
        {
            "onnx": {
                "opset": OPSET,
                "exporter": f"torch {torch.__version__} (TorchScript)",
                "sample_max_abs_diff": difference,
            }
        },
    )


def compare(model_dir: Path, texts: Sequence[str], labels: Sequence[int], batch_size: int) -> dict:
    """Both runtimes of the handler over `texts`: max difference, disagreements, accuracy, speed."""
    from scripts.build_archive import MODELS
    from scripts.inprocess import load_handler

    spec = MODELS["sentiment_bert"]
    config = yaml.safe_load(spec.config_file.read_text())
    result: dict[str, Any] = {"texts": len(texts), "batch_size": batch_size}
    probabilities = {}
    for runtime in ("onnx", "torch"):
        handler = load_handler(
            spec.name,
            model_dir,
            spec.handler,
            {**config, "handler": {**config["handler"], "runtime": runtime}},
        )
        assert handler.runtime == runtime, f"asked for {runtime}, got {handler.runtime}"
        started = time.perf_counter()
        rows = [
            handler.predict_proba(list(texts[i : i + batch_size]))
            for i in range(0, len(texts), batch_size)
        ]
        result[f"{runtime}_texts_per_s"] = round(len(texts) / (time.perf_counter() - started), 1)
        probabilities[runtime] = np.concatenate([np.asarray(r, dtype=np.float64) for r in rows])
        predicted = probabilities[runtime].argmax(axis=1)
        result[f"{runtime}_accuracy"] = round(float((predicted == np.asarray(labels)).mean()), 6)
    onnx, torch_ = probabilities["onnx"], probabilities["torch"]
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
    args = parser.parse_args(argv)
    from scripts.build_archive import ensure_artifacts

    try:
        (test_file,) = ensure_files(resolve_data_dir(args.data_dir), [TEST_FILE])
    except DataNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    texts, labels = read_labelled(test_file, args.rows)
    with tempfile.TemporaryDirectory(prefix="bert-onnx-") as tmp:
        model_dir = Path(tmp)
        source = args.artifacts or ensure_artifacts("sentiment_bert", args.data_dir)
        for item in source.iterdir():
            if item.is_file():
                shutil.copy2(item, model_dir / item.name)
        export(model_dir)
        result = compare(model_dir, texts, labels, args.batch_size)
    print(yaml.safe_dump(result, sort_keys=False).strip())
    return 0 if result["within_tolerance"] else 1


if __name__ == "__main__":
    sys.exit(main())
