"""A short soak in CI (the documented run is 10 minutes: docs/security-and-reliability.md)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.soak import attach, soak
from scripts.ops.server import TorchServe


def test_short_soak_has_no_server_errors(server: TorchServe):
    """64 concurrent clients for 10 s: both models, lists, 5 % bad bodies -> no 5xx."""
    report = soak(attach(Path(server.run_dir)), seconds=10, concurrency=64, warmup=2)
    print(report.format())
    assert len(report.outcomes) > 100
    assert {o.model for o in report.outcomes} == set(server.models)
    assert any(o.bad for o in report.outcomes) and any(o.status == 400 for o in report.outcomes)
    assert report.server_errors == 0, report.codes
    assert report.unexpected == 0, report.codes
    assert not report.restarted
    # "frontend", "<model> worker", "<model> worker 2", ...: one entry per process, all measured
    kinds = {label.rsplit(" worker", 1)[0] for label in report.rss_start}
    assert kinds == {"frontend", *server.models} and all(report.rss_start.values())
