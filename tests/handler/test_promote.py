"""promote_checkpoint end to end: both checkpoints scored on validation with the served handler."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from handlers.artifacts import BERT_FILES, METADATA_FILE, load_verified_metadata, write_metadata
from scripts.inprocess import load_registered
from scripts.nsmc import TEST_FILE, TRAIN_FILE, is_validation
from scripts.packaging.promote_checkpoint import NotBetterError, promote
from scripts.training import evaluate
from tests.synthetic_nsmc import review


@pytest.fixture(scope="module")
def positive_nsmc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """NSMC files of positive reviews only, so a model that always answers positive is right
    on every validation review and one that always answers negative on none."""
    out, rng = tmp_path_factory.mktemp("positive_nsmc"), random.Random(0)
    for name, rows in ((TRAIN_FILE, 300), (TEST_FILE, 20)):
        lines = ["id\tdocument\tlabel", *(f"{i}\t{review(rng, 1)}\t1" for i in range(rows))]
        (out / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def constant(source: Path, out: Path, label: int) -> Path:
    """A copy of `source` that answers `label` for every text: zero classifier weights, and a
    bias that decides, with a manifest whose test accuracy claims the opposite."""
    shutil.copytree(source, out)
    weights = load_file(out / "model.safetensors")
    weights["classifier.weight"] = torch.zeros_like(weights["classifier.weight"])
    weights["classifier.bias"] = torch.tensor([5.0, -5.0] if label == 0 else [-5.0, 5.0])
    save_file(weights, out / "model.safetensors", metadata={"format": "pt"})
    saved = json.loads((out / METADATA_FILE).read_text(encoding="utf-8"))
    claimed = {"command": f"always {label}", "test_accuracy": 0.9 if label == 0 else 0.1}
    write_metadata(out, {**saved, **claimed}, BERT_FILES)
    return out


def test_better_on_validation_is_promoted_and_the_worse_one_refused(
    random_bert_dir: Path, positive_nsmc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(evaluate, "CACHE", tmp_path / "cache")  # not the repository's build/
    negative = constant(random_bert_dir, tmp_path / "negative", 0)
    positive = constant(random_bert_dir, tmp_path / "positive", 1)
    target = shutil.copytree(negative, tmp_path / "committed")
    rows = sum(is_validation(line.split("\t")[0])
               for line in (positive_nsmc / TRAIN_FILE).read_text().splitlines()[1:])  # fmt: skip
    assert rows >= 10  # enough that b = rows, c = 0 is significant

    metadata = promote(positive, target, positive_nsmc)
    promotion = metadata["promotion"]
    assert (promotion["rows"], promotion["right_only_new"], promotion["right_only_old"]) == (
        rows, rows, 0)  # fmt: skip
    assert promotion["validation_accuracy_new"] == 1.0
    assert promotion["validation_accuracy_old"] == 0.0
    assert promotion["p_value"] == pytest.approx(2 * 0.5**rows)
    assert metadata["replaced"]["test_accuracy"] == 0.9  # a better test figure did not save it
    served = (target / "model.safetensors").read_bytes()
    assert served == (positive / "model.safetensors").read_bytes()
    assert len(list((tmp_path / "cache").glob("sentiment_bert-validation-*.npy"))) == 2

    with pytest.raises(NotBetterError, match=f"b = 0, only with the committed c = {rows}"):
        promote(negative, target, positive_nsmc)
    with pytest.raises(NotBetterError, match="b = 0, .* c = 0, exact binomial p = 1 "):
        promote(positive, target, positive_nsmc)  # the very same weights
    assert json.loads((target / METADATA_FILE).read_text())["command"] == "always 1"


def test_half_commits_the_fp16_copy_it_scored(
    random_bert_dir: Path, positive_nsmc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """--half: the weights are committed in fp16 (half the bytes), hashed anew, and the
    copy that was scored on validation is the one committed; the source is left as it was."""
    monkeypatch.setattr(evaluate, "CACHE", tmp_path / "cache")
    target = shutil.copytree(constant(random_bert_dir, tmp_path / "negative", 0),
                             tmp_path / "committed")  # fmt: skip
    positive = constant(random_bert_dir, tmp_path / "positive", 1)
    before = (positive / "model.safetensors").read_bytes()

    metadata = promote(positive, target, positive_nsmc, half=True)
    assert metadata["weights_stored"] == "float16"
    assert metadata["promotion"]["validation_accuracy_new"] == 1.0
    committed = load_file(target / "model.safetensors")
    assert {tensor.dtype for tensor in committed.values()} == {torch.float16}
    original = load_file(positive / "model.safetensors")
    assert (target / "model.safetensors").stat().st_size < 0.6 * len(before)
    for name, tensor in original.items():
        torch.testing.assert_close(committed[name].float(), tensor, atol=1e-2, rtol=1e-3)
    load_verified_metadata(target, BERT_FILES)  # the new hashes match the committed files
    assert (positive / "model.safetensors").read_bytes() == before
    handler = load_registered("sentiment_bert", target, runtime="torch")
    assert {p.dtype for p in handler.model.parameters()} == {torch.float32}
