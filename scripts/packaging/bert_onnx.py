"""sentiment_bert's build step: its ONNX Runtime export, checked against torch.

`prepare` is the registry's build step for sentiment_bert (scripts/registry.py): it runs
inside scripts/packaging/build_archive.py on the staged copy of the artifacts, gives a
foreign checkpoint its manifest, writes model.onnx beside model.safetensors (which stays, for
the torch runtime and explanations), checks both on sample batches with padding, adds its
dynamic int8 quantization (model.int8.onnx, served with `runtime: onnx-int8`), and records
each file's SHA-256 in metadata.json like every other artifact.  Built for one runtime
(`build_archive --runtime`), the stage keeps only that runtime's model file: no ONNX for
torch, no weights for an ONNX runtime (the int8 file is still made from the fp32 export,
which then goes).  The parity check over the NSMC test set is a benchmark:
benchmarks/onnx_parity.py.
"""

from __future__ import annotations

import inspect
import logging
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import onnxruntime
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from transformers import AutoTokenizer
from transformers.utils import logging as hf_logging

from handlers.artifacts import (
    BERT_ONNX_FILE,
    BERT_ONNX_INT8_FILE,
    BERT_ONNX_OUTPUT,
    BERT_RUNTIME_FILES,
    add_artifact,
    remove_artifacts,
)
from handlers.bert_settings import RUNTIMES, position_limit
from handlers.bert_weights import load_classifier
from handlers.scoring import softmax
from scripts.packaging.bert_checkpoint import ensure_manifest

TOLERANCE = 1e-4  # max |p_onnx - p_torch| accepted, per probability
# Other weight files a checkpoint may carry (pytorch_model.bin, shards, TF/Flax): an archive
# without the torch runtime leaves them out too.
WEIGHT_PATTERNS = ("*.safetensors", "*.safetensors.index.json", "*.bin", "*.bin.index.json",
                   "*.pt", "*.pth", "*.h5", "*.msgpack", "*.ckpt*")  # fmt: skip
OPSET = 17
# Different lengths, so the export traces the padded (attention-masked) path.
SAMPLE = [
    "정말 재밌게 잘봤습니다! 배우들 연기도 좋고 음악도 최고",
    "최악",
    "그냥 그랬다 ㅋㅋ 시간 때우기용으로는 나쁘지 않음",
    "발연기 도저히 못보겠다 진짜 이렇게 연기를 못할거라곤 상상도 못했네",
]


def _session(path: Path) -> Any:
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _encode(model: Any, tokenizer: Any, texts: list[str]) -> Any:
    """Padded tensors, cut as the handler cuts them to what the checkpoint embeds: a SAMPLE
    text longer than a small checkpoint's position table would fail the build otherwise."""
    limit = position_limit(model.config, tokenizer)
    return tokenizer(texts, padding=True, truncation=limit is not None, max_length=limit,
                     return_tensors="pt")  # fmt: skip


def _sample_difference(model: Any, tokenizer: Any, path: Path) -> float:
    """Max probability difference torch vs ONNX on SAMPLE, batched (padded) and one by one."""
    session = _session(path)
    inputs = [node.name for node in session.get_inputs()]
    worst = 0.0
    for batch in [SAMPLE, *([text] for text in SAMPLE)]:
        encoded = _encode(model, tokenizer, batch)
        with torch.inference_mode():
            expected = torch.softmax(model(**encoded).logits, dim=-1).numpy()
        (logits,) = session.run([BERT_ONNX_OUTPUT], {n: encoded[n].numpy() for n in inputs})
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
    hf_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = load_classifier(model_dir).eval()
    encoded = _encode(model, tokenizer, SAMPLE[:2])
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
            output_names=[BERT_ONNX_OUTPUT],
            dynamic_axes={**axes, BERT_ONNX_OUTPUT: {0: "batch"}},
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


# onnxruntime.quantization advises, on the root logger, to run its pre-processing (shape
# inference, graph optimisation) first. The int8 model here is made without it on purpose (what
# benchmarks.onnx_parity measured); the advice was printed once per archive holding BERT, twice
# on `make serve`'s first run. Only that advice is dropped.
QUANTIZE_ADVICE = ("Please consider to run pre-processing", "Please consider pre-processing")


def _not_quantize_advice(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith(QUANTIZE_ADVICE)


def quantize_int8(model_dir: Path) -> dict:
    """model_dir/model.int8.onnx: the export with int8 weights, activations quantized on the fly.

    Not checked against torch like the export: int8 changes answers by design.  What it costs
    in accuracy is measured over the test set by `benchmarks.onnx_parity --runtime onnx-int8`.
    """
    root = logging.getLogger()
    root.addFilter(_not_quantize_advice)
    try:
        quantize_dynamic(
            str(model_dir / BERT_ONNX_FILE), str(model_dir / BERT_ONNX_INT8_FILE),
            weight_type=QuantType.QInt8,
        )  # fmt: skip
    finally:
        root.removeFilter(_not_quantize_advice)
    method = "dynamic int8 (onnxruntime.quantization, QInt8 weights)"
    return add_artifact(model_dir, BERT_ONNX_INT8_FILE, {"onnx_int8": method})


def unpacked_files(stage: Path, runtimes: Sequence[str]) -> list[str]:
    """The files in `stage` that no runtime in `runtimes` serves from: the other runtimes'
    model files, and every weight file when torch is not among them."""
    others = [BERT_RUNTIME_FILES[r] for r in RUNTIMES if r not in runtimes]
    if "torch" not in runtimes:
        others += [path.name for pattern in WEIGHT_PATTERNS for path in stage.glob(pattern)]
    return sorted({name for name in others if (stage / name).exists()})


def keep_runtimes(stage: Path, runtimes: Sequence[str]) -> dict:
    """Leave only what `runtimes` serve from in `stage`, recorded as `runtimes` in metadata.json."""
    return remove_artifacts(stage, unpacked_files(stage, runtimes), {"runtimes": list(runtimes)})


def prepare(
    stage: Path, source: Path, labels: Sequence[str] | None = None, runtime: str | None = None
) -> dict:
    """The archive's build step: a foreign checkpoint gets its manifest, every one its label
    order checked (`labels`: stated with build_archive's --labels) and the exports its
    runtimes need (`runtime`: the one the archive is for; None: all three)."""
    runtimes = list(RUNTIMES) if runtime is None else [runtime]
    ensure_manifest(stage, str(source), labels)
    if {"onnx", "onnx-int8"} & set(runtimes):
        export(stage)
    if "onnx-int8" in runtimes:
        quantize_int8(stage)
    return keep_runtimes(stage, runtimes)
