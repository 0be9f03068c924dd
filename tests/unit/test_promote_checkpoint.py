"""The committed BERT checkpoint is replaced only by a verified, small enough, better one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from handlers.artifacts import BERT_FILES, METADATA_FILE, TamperedArtifactError, write_metadata
from scripts.packaging import promote_checkpoint
from scripts.packaging.promote_checkpoint import NotBetterError, TooLargeError, main, promote


def checkpoint(directory: Path, accuracy: float, payload: bytes = b"weights") -> Path:
    """A directory shaped like train_bert's output (file contents do not matter here)."""
    directory.mkdir(parents=True)
    for name in BERT_FILES:
        (directory / name).write_bytes(payload + name.encode())
    metadata = {"model": "sentiment_bert", "test_accuracy": accuracy, "command": f"run {accuracy}"}
    write_metadata(directory, metadata, BERT_FILES)
    return directory


def test_better_checkpoint_replaces_and_records_the_old_one(tmp_path: Path):
    target = checkpoint(tmp_path / "committed", 0.868)
    (target / "leftover.bin").write_bytes(b"from an older layout")
    source = checkpoint(tmp_path / "new", 0.880, b"better")
    metadata = promote(source, target)
    assert metadata["test_accuracy"] == 0.880
    assert metadata["replaced"] == {"command": "run 0.868", "test_accuracy": 0.868}
    assert sorted(p.name for p in target.iterdir()) == sorted([*BERT_FILES, METADATA_FILE])
    assert (target / "config.json").read_bytes() == b"betterconfig.json"
    saved = json.loads((target / METADATA_FILE).read_text())
    assert saved["artifact_sha256"] == json.loads((source / METADATA_FILE).read_text())[
        "artifact_sha256"
    ]


def test_worse_or_equal_checkpoint_is_refused_unless_forced(tmp_path: Path, capsys):
    target = checkpoint(tmp_path / "committed", 0.868)
    source = checkpoint(tmp_path / "new", 0.868, b"other")
    with pytest.raises(NotBetterError, match="0.8680"):
        promote(source, target)
    assert (target / "config.json").read_bytes() == b"weightsconfig.json"
    assert main([str(source), "--target", str(target)]) == 1
    assert "keeping the committed one" in capsys.readouterr().err
    assert promote(source, target, force=True)["test_accuracy"] == 0.868


def test_tampered_or_oversized_candidate_is_refused(tmp_path: Path, monkeypatch):
    target = checkpoint(tmp_path / "committed", 0.868)
    source = checkpoint(tmp_path / "new", 0.9)
    (source / "model.safetensors").write_bytes(b"changed after training")
    with pytest.raises(TamperedArtifactError, match="model.safetensors"):
        promote(source, target)
    big = checkpoint(tmp_path / "big", 0.9, b"x" * 1000)
    monkeypatch.setattr(promote_checkpoint, "MAX_BYTES", 1000)
    with pytest.raises(TooLargeError, match="MiB"):
        promote(big, target)
    assert json.loads((target / METADATA_FILE).read_text())["test_accuracy"] == 0.868
