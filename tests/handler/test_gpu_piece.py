"""The prepared GPU piece (scripts/training/gpu_piece.sh) run here on the CPU, as the device
tool would run it: device minutes are scarce, so the script must work before it goes there.
A first piece starts a run and sends back its state; a second one, given that state, resumes
it at the step where the first stopped."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from scripts.registry import ROOT
from scripts.training.device_piece import pack_data, pack_worker
from scripts.training.train_bert import STOPPED_EXIT  # --stop-after-minutes ran out
from tests.synthetic_nsmc import write_nsmc

SCRIPT = ROOT / "scripts" / "training" / "gpu_piece.sh"


def _run_piece(device_dir: Path, out: Path, tmp_path: Path,
               run: str) -> subprocess.CompletedProcess:
    """The script with the venv's python as `python3` (the GPU machine's own python there), on
    the made-up reviews with the tiny preset; a budget of 0 minutes stops it after one step."""
    out.mkdir()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "OUT": str(out), "DEVICE_DIR": str(device_dir), "RUN": str(tmp_path / run),
           "DATA": str(tmp_path / "data"), "PRESET": "tiny", "MINUTES": "0",
           "HANDLER_ROWS": "16", "THREADS": "1"}  # fmt: skip
    return subprocess.run(["bash", str(SCRIPT)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip


def test_a_gpu_piece_sends_back_a_state_that_the_next_piece_resumes(tmp_path: Path):
    device_dir = tmp_path / "device"
    pack_data(write_nsmc(tmp_path / "nsmc", train_rows=300, test_rows=80, unlabeled_rows=200),
              device_dir / "nsmc")  # fmt: skip
    pack_worker(device_dir / "site")

    first = _run_piece(device_dir, tmp_path / "out1", tmp_path, "run1")
    assert first.returncode == STOPPED_EXIT, first.stdout + first.stderr
    manifest = json.loads((tmp_path / "out1" / "piece.json").read_text())
    assert manifest["weights"] == "float16" and manifest["chunks"] == ["piece.00"]
    assert "settings" in (tmp_path / "out1" / "gpu_handler.yaml").read_text()
    first_log = (tmp_path / "out1" / "train.log").read_text()
    stopped = re.search(r"pretrain stopped at step (\d+)/", first_log)
    assert stopped, first_log

    shutil.copytree(tmp_path / "out1", device_dir / "piece")  # as unpacked here and packed again
    second = _run_piece(device_dir, tmp_path / "out2", tmp_path, "run2")
    assert second.returncode == STOPPED_EXIT, second.stdout + second.stderr
    log = (tmp_path / "out2" / "train.log").read_text()
    assert stopped.group(1) == "1" and "pretrain stopped at step 2/" in log, log
    assert "resuming pretrain at step 1/" in log and "Adam restarted" in log, log
