"""A checkpoint saved in half precision is archived, served and fine-tuned in float32.

Before: transformers 5 loads weights in the dtype they were saved in, and hub checkpoints are
often saved in fp16 or bf16.  Such a checkpoint's default archive failed to build (its ONNX
export would not load: LayerNormalization bound to float and float16), and with runtime
torch it was served in fp16, several times slower on this CPU (docs/performance/half_precision.md).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from scripts.inprocess import load_archive
from scripts.packaging import build_archive
from scripts.packaging.bert_onnx import TOLERANCE
from scripts.training.train_bert import classifier
from tests.checkpoints import TEXTS, save_checkpoint

HALVES = {"fp16": torch.float16, "bf16": torch.bfloat16}


@pytest.fixture(scope="module", params=list(HALVES))
def half(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A bare checkpoint re-saved in half precision, and what its rounded weights answer when
    computed in float32 (from the full-precision model, not through the code under test)."""
    root = tmp_path_factory.mktemp(request.param)
    full = save_checkpoint("bert", root / "full")
    stored = root / "half"
    shutil.copytree(full, stored)
    model = AutoModelForSequenceClassification.from_pretrained(full, dtype=torch.float32)
    model.to(HALVES[request.param]).save_pretrained(stored)
    reference = model.float().eval()  # float32 again, holding the rounded values
    tokenizer = AutoTokenizer.from_pretrained(full)
    with torch.inference_mode():
        encoded = tokenizer(TEXTS, padding=True, return_tensors="pt")
        expected = torch.softmax(reference(**encoded).logits, dim=-1).numpy()
    return stored, expected


def test_the_stored_weights_really_are_half(half):
    stored, _ = half
    loaded = AutoModelForSequenceClassification.from_pretrained(stored)
    assert next(loaded.parameters()).dtype in HALVES.values()


def test_the_default_archive_builds_and_serves_it_in_float32(half, tmp_path):
    stored, expected = half
    argv = ["sentiment_bert", "--artifacts", str(stored), "--store", str(tmp_path),
            "--version", "3.0"]  # fmt: skip
    assert build_archive.main(argv) == 0
    mar = tmp_path / "sentiment_bert_v3.0.mar"
    torch_handler = load_archive(mar, tmp_path / "torch", {"runtime": "torch"})
    assert {p.dtype for p in torch_handler.model.parameters()} == {torch.float32}
    np.testing.assert_allclose(torch_handler.predict_proba(TEXTS), expected, atol=1e-5)
    onnx_handler = load_archive(mar, tmp_path / "onnx")
    assert onnx_handler.runtime == "onnx"
    assert np.abs(np.asarray(onnx_handler.predict_proba(TEXTS)) - expected).max() <= TOLERANCE


def test_fine_tuning_starts_from_it_in_float32(half):
    stored, _ = half
    model = classifier(stored)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
