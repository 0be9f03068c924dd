"""A checkpoint's label order, from its config or stated at build, is the one it is served by.

Before: any name the project did not know was taken as 0 = negative, so a checkpoint
saved with id2label {0: "pos", 1: "neg"} was served inverted without a word.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from handlers.artifacts import METADATA_FILE
from scripts.inprocess import load_archive, load_registered
from scripts.packaging import build_archive
from scripts.packaging.bert_checkpoint import CONFIG_LABELS, STATED_LABELS, ensure_manifest
from tests.checkpoints import TEXTS, save_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bare random BERT checkpoint (no metadata.json), labels named by each test."""
    return save_checkpoint("bert", tmp_path_factory.mktemp("labels") / "bert")


def relabelled(checkpoint: Path, out: Path, names: tuple[str, str]) -> Path:
    """A copy of `checkpoint` whose config names its columns `names`."""
    shutil.copytree(checkpoint, out)
    config = json.loads((out / "config.json").read_text())
    config["id2label"] = dict(enumerate(names))
    config["label2id"] = {name: i for i, name in enumerate(names)}
    (out / "config.json").write_text(json.dumps(config))
    return out


def raw_probabilities(checkpoint: Path) -> np.ndarray:
    """transformers' own softmax over the checkpoint's columns, in its index order."""
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint).eval()
    with torch.inference_mode():
        encoded = tokenizer(TEXTS, padding=True, return_tensors="pt")
        return torch.softmax(model(**encoded).logits, dim=-1).numpy()


CASES = [(("pos", "neg"), True), (("NEG", "POS"), False), (("긍정", "부정"), True),
         (("LABEL_0", "LABEL_1"), False)]  # fmt: skip


@pytest.mark.parametrize("names,swapped", CASES)
def test_known_names_are_served_the_right_way_round(checkpoint, tmp_path, names, swapped):
    """The manifest records the config's order and the handler serves by it."""
    stage = relabelled(checkpoint, tmp_path / "stage", names)
    ensure_manifest(stage, "somewhere")
    metadata = json.loads((stage / METADATA_FILE).read_text())
    expected = ["positive", "negative"] if swapped else ["negative", "positive"]
    assert metadata["labels"] == expected and metadata["label_source"] == CONFIG_LABELS
    handler = load_registered("sentiment_bert", stage, runtime="torch")
    raw = raw_probabilities(stage)
    got = np.asarray(handler.predict_proba(TEXTS))
    np.testing.assert_allclose(got, raw[:, ::-1] if swapped else raw, atol=1e-5)


def test_unknown_names_are_refused_at_build_naming_them_and_the_flag(
    checkpoint, tmp_path, capsys
):
    source = relabelled(checkpoint, tmp_path / "bad_good", ("bad", "good"))
    argv = ["sentiment_bert", "--artifacts", str(source), "--store", str(tmp_path / "store"),
            "--version", "9.0"]  # fmt: skip
    with pytest.raises(SystemExit) as exited:
        build_archive.main(argv)
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert "['bad', 'good']" in error and "--labels negative,positive" in error
    assert not list((tmp_path / "store").glob("*.mar"))
    assert not (source / METADATA_FILE).exists(), "the build must not write into the source"


def test_stated_labels_override_the_config_and_are_described(checkpoint, tmp_path):
    """`--labels` wins over the config's (here wrong) names; describe says which order and why."""
    source = relabelled(checkpoint, tmp_path / "wrong", ("negative", "positive"))
    store = tmp_path / "store"
    argv = ["sentiment_bert", "--artifacts", str(source), "--store", str(store),
            "--version", "9.0", "--labels", "pos, neg"]  # fmt: skip
    assert build_archive.main(argv) == 0
    handler = load_archive(store / "sentiment_bert_v9.0.mar", tmp_path / "unpacked")
    described = json.loads(handler.describe_handle())
    assert described["labels"] == ["positive", "negative"]
    assert described["label_source"] == STATED_LABELS
    got = np.asarray(handler.predict_proba(TEXTS))
    np.testing.assert_allclose(got, raw_probabilities(source)[:, ::-1], atol=1e-4)


def test_stated_labels_replace_an_existing_manifests_order(random_bert_dir, tmp_path):
    """The project's own manifest keeps its order unless the build states another."""
    stage = tmp_path / "stage"
    shutil.copytree(random_bert_dir, stage)
    ensure_manifest(stage, "own")
    assert json.loads((stage / METADATA_FILE).read_text())["labels"] == ["negative", "positive"]
    ensure_manifest(stage, "own", ["1", "0"])
    metadata = json.loads((stage / METADATA_FILE).read_text())
    assert metadata["labels"] == ["positive", "negative"]
    assert metadata["label_source"] == STATED_LABELS
    with pytest.raises(ValueError, match="names 3 labels"):
        ensure_manifest(stage, "own", ["neg", "pos", "neutral"])
