"""scripts.training.soup: the greedy weight average of checkpoints from one start."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from handlers.artifacts import BERT_FILES, load_verified_metadata, write_metadata
from scripts.training.soup import (
    IncompatibleCheckpointsError,
    ValidationSeenError,
    average,
    make_soup,
)


def _variant(source: Path, out: Path, noise: float, seed: int, **manifest) -> Path:
    """A copy of `source` with Gaussian noise on every weight: another run from the same start."""
    shutil.copytree(source, out)
    generator = torch.Generator().manual_seed(seed)
    weights = {name: tensor + noise * torch.randn(tensor.shape, generator=generator)
               if tensor.is_floating_point() else tensor
               for name, tensor in load_file(out / "model.safetensors").items()}  # fmt: skip
    save_file(weights, out / "model.safetensors", metadata={"format": "pt"})
    saved = json.loads((out / "metadata.json").read_text(encoding="utf-8"))
    write_metadata(out, {**saved, "command": f"noise {noise}, seed {seed}", **manifest}, BERT_FILES)
    return out


def test_soup_keeps_what_helps_and_records_it(
    bert_artifacts: Path, nsmc_dir: Path, tmp_path: Path
):
    # `twin` has the very weights of its start, so it cannot lower validation and must be
    # kept (a copy with noise 1e-5 could flip a borderline text either way: a flaky test)
    twin = _variant(bert_artifacts, tmp_path / "twin", noise=0.0, seed=1)
    wrecked = _variant(bert_artifacts, tmp_path / "wrecked", noise=5.0, seed=2)
    metadata = make_soup([wrecked, bert_artifacts, twin], nsmc_dir, tmp_path / "soup")

    kept = [Path(i["directory"]) for i in metadata["ingredients"]]
    assert sorted(kept) == sorted([bert_artifacts, twin])
    assert [Path(i["directory"]) for i in metadata["left_out"]] == [wrecked]
    best = max(i["validation_accuracy"] for i in metadata["ingredients"])
    assert metadata["validation_accuracy"] >= best  # greedy: never worse than its best ingredient
    expected = average([load_file(d / "model.safetensors") for d in kept])
    start, far = (load_file(d / "model.safetensors") for d in (bert_artifacts, wrecked))
    mean = average([start, far])  # the average itself, on weights that differ
    assert all(torch.allclose(mean[n], (start[n].float() + far[n].float()) / 2) for n in start
               if start[n].is_floating_point())  # fmt: skip
    soup = load_file(tmp_path / "soup" / "model.safetensors")
    assert all(torch.allclose(soup[name], expected[name]) for name in expected)
    assert {i["manifest"]["command"] for i in metadata["ingredients"]} <= {
        json.loads((d / "metadata.json").read_text())["command"] for d in kept}
    verified = load_verified_metadata(tmp_path / "soup", BERT_FILES)  # hashes match the files
    assert verified["calibration"]["rows"] == metadata["validation_rows"]
    assert "scripts.training.soup" in verified["command"]


def test_soup_refuses_checkpoints_of_another_start(
    bert_artifacts: Path, random_bert_dir: Path, nsmc_dir: Path, tmp_path: Path
):
    with pytest.raises(IncompatibleCheckpointsError, match="tokenizer"):
        make_soup([bert_artifacts, random_bert_dir], nsmc_dir, tmp_path / "soup")
    assert not (tmp_path / "soup").exists()


def test_soup_refuses_an_ingredient_that_trained_on_the_validation_split(
    bert_artifacts: Path, nsmc_dir: Path, tmp_path: Path
):
    every_row = _variant(bert_artifacts, tmp_path / "all", noise=1e-5, seed=3, train_part="all")
    with pytest.raises(ValidationSeenError, match="fit part"):
        make_soup([bert_artifacts, every_row], nsmc_dir, tmp_path / "soup")
