"""A checkpoint whose tokenizer is only vocab files (vocab.txt, no tokenizer.json), as older
BERT checkpoints are saved: the build makes its tokenizer.json, and it is served with the
same word pieces transformers gives the original directory (docs/models/serve-your-own.md).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
)

from scripts.inprocess import load_archive
from scripts.packaging.build_archive import build_archive
from scripts.registry import MODELS
from scripts.training.pretraining import SPECIAL_TOKENS
from tests.checkpoints import TEXTS


def vocab_only_checkpoint(out: Path) -> Path:
    """A random BERT whose tokenizer is vocab.txt + tokenizer_config.json, cased as
    Korean needs (lower-casing decomposes Hangul into jamo)."""
    out.mkdir(parents=True)
    chars = sorted(set("".join(TEXTS)) - {" "})
    vocab = SPECIAL_TOKENS + chars + [f"##{c}" for c in chars]
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (out / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "BertTokenizer", "do_lower_case": False, "strip_accents": False}))
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                        num_labels=2)  # fmt: skip
    BertForSequenceClassification(config).save_pretrained(out)
    return out


def transformers_answer(checkpoint: Path, texts: list[str]) -> np.ndarray:
    """The original directory's probabilities (LABEL_0 = negative), by transformers itself."""
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint).eval()
    with torch.inference_mode():
        encoded = tokenizer(texts, padding=True, return_tensors="pt")
        return torch.softmax(model(**encoded).logits, dim=-1).numpy()


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_a_vocab_only_tokenizer_is_served_as_transformers_reads_it(tmp_path: Path, runtime):
    checkpoint = vocab_only_checkpoint(tmp_path / "checkpoint")
    assert not (checkpoint / "tokenizer.json").exists()
    mar = build_archive(MODELS["sentiment_bert"], checkpoint, tmp_path / "store", runtime=runtime)
    with zipfile.ZipFile(mar) as archive:
        assert "tokenizer.json" in archive.namelist()
    assert not (checkpoint / "tokenizer.json").exists(), "the build works on a copy"
    handler = load_archive(mar, tmp_path / "unpacked")
    assert "tokenizer.json" in handler.metadata["artifact_sha256"]
    got = np.asarray(handler.predict_proba(TEXTS))
    assert np.abs(got - transformers_answer(checkpoint, TEXTS)).max() <= 1e-5


def test_weights_saved_as_pytorch_model_bin_are_served(tmp_path: Path):
    """A checkpoint with pytorch_model.bin only (older save_pretrained, or
    safe_serialization=False): the build re-saves it as model.safetensors, one copy, and it
    answers as transformers does."""
    checkpoint = vocab_only_checkpoint(tmp_path / "checkpoint")
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint)
    (checkpoint / "model.safetensors").unlink()
    torch.save(model.state_dict(), checkpoint / "pytorch_model.bin")
    mar = build_archive(MODELS["sentiment_bert"], checkpoint, tmp_path / "store", runtime="torch")
    with zipfile.ZipFile(mar) as archive:
        names = archive.namelist()
    assert "model.safetensors" in names and not any(n.endswith(".bin") for n in names)
    assert (checkpoint / "pytorch_model.bin").exists(), "the build works on a copy"
    handler = load_archive(mar, tmp_path / "unpacked")
    got = np.asarray(handler.predict_proba(TEXTS))
    assert np.abs(got - transformers_answer(checkpoint, TEXTS)).max() <= 1e-5
