"""benchmarks.bench for real, briefly: TorchServe and the reference app under wrk, a report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from benchmarks import bench
from benchmarks.report import write_report
from tests.conftest import missing


def test_short_real_run_against_torchserve_and_reference_app(
    fast_artifacts: Path, nsmc_dir: Path, tmp_path: Path
):
    """Both servers start, answer wrk without errors, are stopped, and the report is written."""
    if not shutil.which("wrk"):
        missing("wrk not installed", "apt-get install wrk")
    argv = "--servers fast,reference -c 2 --seconds 1 --warmup 0 --rounds 1 --no-ceilings"
    args = bench.build_parser().parse_args([*argv.split(), "--data-dir", str(nsmc_dir)])
    report = bench.run(args, artifacts={"sentiment_fast": fast_artifacts})
    assert [(r["server"], r["errors"]) for r in report["runs"]] == [("fast", 0), ("reference", 0)]
    assert all(r["rps"] > 0 and r["cpu_ms_per_req_workers"] > 0 for r in report["runs"])
    assert report["runs"][0]["ts_inference_ms"] > 0  # TorchServe's own latency counters
    text = write_report(report, tmp_path)
    assert "| fast | 2 |" in text and "| reference | 2 |" in text
    assert json.loads((tmp_path / "results.json").read_text())["settings"]["rounds"] == 1
    assert (tmp_path / "bench.png").read_bytes()[:4] == b"\x89PNG"
