"""Command-line behaviour of the scripts that does not need a server."""

from __future__ import annotations

import subprocess
import urllib.request
from pathlib import Path

import pytest

from scripts.nsmc import DataNotFoundError, ensure_files
from scripts.ops.server import TorchServe
from scripts.registry import ROOT
from scripts.training import train_fast


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


def test_make_status_with_nothing_running_is_one_clear_line(tmp_path: Path):
    """Not running is an answer, not a failure of make: no `make: *** ... Error 1`."""
    # -o: never refresh the venv here (pip's own warnings would land on stderr)
    result = subprocess.run(["make", "-s", "-o", ".venv/.installed", "status",
                             f"RUN_DIR={tmp_path}"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert result.returncode == 0 and not result.stderr, result.stderr
    assert result.stdout == f"TorchServe is not running from {tmp_path}\n"


def make_plan(target: str) -> str:
    """The commands `make <target>` would run (-n: none is run; -o: the venv is not refreshed)."""
    return subprocess.run(["make", "-n", "-o", ".venv/.installed", target], cwd=ROOT,
                          capture_output=True, text=True, check=True, timeout=60).stdout  # fmt: skip


def test_slow_tests_run_in_ci_and_can_be_left_out_by_hand():
    """CI (.ci/run -> make test) keeps the slow key-renewal loop; `make test-fast` leaves it out."""
    assert (ROOT / ".ci" / "run").read_text(encoding="utf-8").rstrip().endswith("make test")
    assert "slow" not in make_plan("test")
    assert '-m "not slow"' in make_plan("test-fast")
