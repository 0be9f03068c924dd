"""The rollout's smoke-test gate reads the validation split (or a file the user names), never
ratings_test.txt, and a slice it cannot read stops the rollout before anything is registered.

Served end to end: tests/integration/test_operate.py.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from scripts.nsmc import TEST_FILE, TRAIN_FILE, is_validation
from scripts.ops import rollout as rollout_module
from scripts.ops.rollout import RolloutError, rollout, smoke_slice

IDS = [str(n) for n in range(1000, 1200)]
VALIDATION = [i for i in IDS if is_validation(i)]


def nsmc_file(path: Path, ids: list[str], prefix: str) -> Path:
    rows = "".join(f"{i}\t{prefix} {i}\t{int(i) % 2}\n" for i in ids)
    path.write_text("id\tdocument\tlabel\n" + rows, encoding="utf-8")
    return path


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    nsmc_file(tmp_path / TRAIN_FILE, IDS, "train")
    nsmc_file(tmp_path / TEST_FILE, IDS, "test")
    return tmp_path


def test_gate_reads_the_validation_split_not_the_test_file(data_dir: Path):
    assert len(VALIDATION) >= 5  # the synthetic ids do reach the split
    held_out = smoke_slice(data_dir, rows=5)
    assert held_out.texts == [f"train {i}" for i in VALIDATION[:5]]
    assert held_out.labels == [int(i) % 2 for i in VALIDATION[:5]]
    assert held_out.described == f"the first 5 validation reviews of {data_dir / TRAIN_FILE}"


def test_gate_reads_the_file_the_user_names(data_dir: Path, tmp_path: Path):
    named = nsmc_file(tmp_path / "slice.txt", IDS[:3], "mine")
    held_out = smoke_slice(data_dir, rows=1000, smoke_file=named)
    assert held_out.texts == [f"mine {i}" for i in IDS[:3]]
    assert held_out.described == f"the first 3 reviews of {named}"


def test_an_empty_slice_is_refused(data_dir: Path, tmp_path: Path):
    with pytest.raises(ValueError, match="no labelled reviews in .*empty.txt"):
        smoke_slice(data_dir, rows=10, smoke_file=nsmc_file(tmp_path / "empty.txt", [], "x"))


class Registry:
    """Management as the rollout sees it, for a server that never registers anything."""

    def __init__(self, server: object) -> None:
        self.server = server

    def default_version(self, model: str) -> str:
        return "1.0"

    def versions(self, model: str) -> list[str]:
        return ["1.0"]

    def register(self, *args: object) -> None:
        raise AssertionError("registered although the smoke slice could not be read")


def test_an_unreadable_slice_stops_the_rollout_before_it_trains(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(rollout_module, "Management", Registry)
    monkeypatch.setattr(rollout_module, "train_fast", Registry.register)
    server = SimpleNamespace(model_store=tmp_path)
    with pytest.raises(RolloutError, match="missing.txt.*1.0 is still the default") as failed:
        rollout(server, "sentiment_fast", tmp_path, smoke_file=tmp_path / "missing.txt")
    assert failed.value.step == "read the smoke slice"
