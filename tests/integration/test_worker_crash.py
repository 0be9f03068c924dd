"""SIGKILL a model worker under traffic: the batch it held gets 507, TorchServe replaces it,
and the replacement answers.

Runs its own TorchServe (sentiment_fast, scaled to one worker) so the session server's workers
stay alive and every answer after the kill can only come from the replacement.  The worker is
stopped (SIGSTOP) before it is killed, so a request is certainly inside the killed batch.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from benchmarks.soak import Traffic, worker_pids
from scripts.ops.manage import Management
from scripts.ops.server import TorchServe
from tests.conftest import local_server

MODEL = "sentiment_fast"
RECOVERY_LIMIT_S = 10  # the bound, from the kill to the first answer after it


@pytest.fixture(scope="module")
def own_server(model_store: Path) -> Iterator[TorchServe]:
    with local_server(model_store, [MODEL], "ts-crash-") as instance:
        Management(instance).scale(MODEL, 1, 1)
        wait_for_one_ready_worker(instance)
        yield instance


def wait_for_one_ready_worker(server: TorchServe, timeout_s: float = 120) -> None:
    """Scaling down may keep the worker that is still loading the model. Paused there, it
    holds the request in the queue, not in a batch, and its replacement answers it (200)."""
    deadline = time.monotonic() + timeout_s
    while server.model_status(MODEL) != ["READY"]:
        assert time.monotonic() < deadline, f"workers after scaling: {server.model_status(MODEL)}"
        time.sleep(0.2)


def post(server: TorchServe, text: str) -> int:
    response = server.request("inference", "POST", f"/predictions/{MODEL}", data=text.encode(),
                              headers={"Content-Type": "text/plain"}, timeout=120)  # fmt: skip
    return response.status_code


def test_killed_worker_is_replaced(own_server: TorchServe):
    [old_pid] = worker_pids(own_server, MODEL)
    held: dict[str, int] = {}
    # Idle and paused, the worker is handed the next request and never answers it.
    os.kill(old_pid, signal.SIGSTOP)
    victim = threading.Thread(target=lambda: held.update(status=post(own_server, "정말 좋다")))
    victim.start()
    time.sleep(1)
    with Traffic(own_server, [MODEL], concurrency=8, bad_ratio=0) as traffic:
        time.sleep(1)  # clients queue behind the held batch
        killed_at = time.monotonic()
        os.kill(old_pid, signal.SIGKILL)
        victim.join(timeout=120)
        deadline = killed_at + 60
        while time.monotonic() < deadline and not any(
            o.started > killed_at and o.status == 200 for o in traffic.outcomes
        ):
            time.sleep(0.1)
        time.sleep(1)  # and the replacement keeps answering
    assert held == {"status": 507}, "the request in the killed worker's batch"
    after = [o for o in traffic.outcomes if o.started + o.latency > killed_at]
    recovered = [o for o in after if o.status == 200]
    assert recovered, "no request succeeded within 60 s of the kill"
    assert all(o.started + o.latency > killed_at for o in traffic.outcomes), "answered by the dead"
    recovery = min(o.started + o.latency for o in recovered) - killed_at
    failed = [o for o in after if o.status != 200]
    assert {o.status for o in failed} <= {507}, "only the killed batch may fail, and with 507"
    assert recovery < RECOVERY_LIMIT_S, (
        f"first success {recovery:.1f} s after the kill (load average {os.getloadavg()[0]:.1f}: "
        "the new worker's torch import and model load are most of it)"
    )
    assert all(o.started < killed_at + recovery for o in failed), "failures after recovery"
    # One worker: whatever answered after the kill is the replacement; it is ready and answers.
    [new_pid] = worker_pids(own_server, MODEL)
    assert new_pid != old_pid and set(own_server.model_status(MODEL)) == {"READY"}
    assert post(own_server, "배우들 연기가 최고") == 200

