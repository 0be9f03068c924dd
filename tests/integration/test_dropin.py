"""Any sequence-classification checkpoint drops in: packed from a bare `save_pretrained` directory,
served, and answering what transformers itself answers (ONNX and torch runtimes).

Covers what stopped that before: a tokenizer that returns token_type_ids (the ONNX export
named the graph's inputs in the tokenizer's order and swapped two of them), a checkpoint
without the project's metadata.json, other architectures, and labels named in reverse order.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import requests
import torch
import yaml
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from handlers.artifacts import METADATA_FILE
from scripts.inprocess import load_archive
from scripts.packaging.bert_checkpoint import NotAClassifierError, write_manifest
from scripts.packaging.bert_onnx import TOLERANCE
from scripts.packaging.build_archive import build_archive
from scripts.registry import MODELS
from tests.checkpoints import ARCHITECTURES, TEXTS, save_checkpoint
from tests.conftest import local_server

SPEC = MODELS["sentiment_bert"]
CASES = [(arch, False) for arch in ARCHITECTURES] + [("bert", True)]


def case_name(arch: str, reverse: bool) -> str:
    return f"dropin_{arch}" + ("_reversed" if reverse else "")


def transformers_answer(checkpoint: Path, texts: list[str]) -> np.ndarray:
    """(p_negative, p_positive) per text straight from transformers, by the checkpoint's names."""
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint).eval()
    with torch.inference_mode():
        encoded = tokenizer(texts, padding=True, return_tensors="pt")
        probabilities = torch.softmax(model(**encoded).logits, dim=-1).numpy()
    column = {label.lower(): int(i) for i, label in model.config.id2label.items()}
    return probabilities[:, [column["negative"], column["positive"]]]


@pytest.fixture(scope="module")
def dropins(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    """Each case's bare checkpoint, packed into one store with one worker per model."""
    root = tmp_path_factory.mktemp("dropin")
    config = yaml.safe_load(SPEC.config_file.read_text())
    config.update(minWorkers=1, maxWorkers=1)
    config_file = root / "model-config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    store, checkpoints = root / "store", {}
    for arch, reverse in CASES:
        name = case_name(arch, reverse)
        checkpoint = save_checkpoint(arch, root / name, reverse_labels=reverse)
        assert not (checkpoint / METADATA_FILE).exists()
        build_archive(SPEC, checkpoint, store, archive_name=name, config_file=config_file)
        assert not (checkpoint / METADATA_FILE).exists(), "the build must not write into the source"
        checkpoints[name] = checkpoint
    return store, checkpoints


@pytest.mark.parametrize("runtime", ["onnx", "torch"])
@pytest.mark.parametrize("arch,reverse", CASES)
def test_packed_checkpoint_answers_as_transformers(dropins, tmp_path, arch, reverse, runtime):
    store, checkpoints = dropins
    name = case_name(arch, reverse)
    handler = load_archive(store / f"{name}.mar", tmp_path, {"runtime": runtime})
    assert handler.runtime == runtime
    assert handler.metadata["source"] == str(checkpoints[name].resolve())
    got = np.asarray(handler.predict_proba(TEXTS))
    expected = transformers_answer(checkpoints[name], TEXTS)
    assert np.abs(got - expected).max() <= TOLERANCE


def test_manifest_names_labels_in_the_checkpoints_order(tmp_path: Path):
    checkpoint = save_checkpoint("bert", tmp_path / "reversed", reverse_labels=True)
    manifest = write_manifest(checkpoint, "somewhere")
    assert manifest["labels"] == ["positive", "negative"] and manifest["source"] == "somewhere"
    assert set(manifest["artifact_sha256"]) >= {"model.safetensors", "tokenizer.json"}


def test_a_checkpoint_with_other_than_two_labels_is_refused_by_name(tmp_path: Path):
    checkpoint = save_checkpoint("bert", tmp_path / "three")
    config = json.loads((checkpoint / "config.json").read_text())
    config["id2label"] = {"0": "a", "1": "b", "2": "c"}
    config["label2id"] = {"a": 0, "b": 1, "c": 2}
    (checkpoint / "config.json").write_text(json.dumps(config))
    with pytest.raises(NotAClassifierError, match="3 labels"):
        write_manifest(checkpoint, "three")


def test_served_checkpoints_answer_as_transformers(dropins):
    """All five behind one real TorchServe, each answering what transformers answers."""
    store, checkpoints = dropins
    with local_server(store, tuple(checkpoints), "ts-dropin-") as server:
        for name, checkpoint in checkpoints.items():
            response = requests.post(
                server.url("inference", f"/predictions/{name}"),
                json={"text": TEXTS},
                headers=server.auth("inference"),
                timeout=60,
            )
            assert response.status_code == 200, (name, response.text)
            got = np.array([[a["probabilities"]["negative"], a["probabilities"]["positive"]]
                            for a in response.json()])  # fmt: skip
            # the contract rounds probabilities to 6 decimals
            assert np.abs(got - transformers_answer(checkpoint, TEXTS)).max() <= TOLERANCE, name
