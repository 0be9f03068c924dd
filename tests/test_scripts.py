"""Command-line behaviour of the scripts that does not need a server."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from scripts import train_fast
from scripts.nsmc import DataNotFoundError, ensure_files
from scripts.server import TorchServe


def test_missing_data_says_which_files_go_where(tmp_path: Path, monkeypatch, capsys):
    def offline(url, path):
        raise OSError("network unreachable")

    monkeypatch.setattr(urllib.request, "urlretrieve", offline)
    with pytest.raises(DataNotFoundError, match="ratings_train.txt.*NSMC_DIR"):
        ensure_files(tmp_path / "nsmc")
    assert (
        train_fast.main(["--data-dir", str(tmp_path / "nsmc"), "--out", str(tmp_path / "o")]) == 2
    )
    assert "error: " in capsys.readouterr().err


def test_stop_when_nothing_runs_says_so(tmp_path: Path):
    assert TorchServe(run_dir=tmp_path).stop() is False
    assert TorchServe(run_dir=tmp_path).pid() is None
