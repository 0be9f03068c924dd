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

from benchmarks.soak import Outcome, Traffic, worker_pids
from scripts.ops.manage import Management
from scripts.ops.server import TorchServe
from tests.conftest import local_server
from tests.waits import arrived_requests, pending_requests, until

MODEL = "sentiment_fast"
RECOVERY_LIMIT_S = 10  # the bound, from the kill to the first answer after it
CLIENTS = 8  # concurrent clients of the traffic around the kill


@pytest.fixture(scope="module")
def own_server(model_store: Path) -> Iterator[TorchServe]:
    with local_server(model_store, [MODEL], "ts-crash-") as instance:
        Management(instance).scale(MODEL, 1, 1)
        wait_for_one_ready_worker(instance)
        yield instance


def wait_for_one_ready_worker(server: TorchServe, timeout_s: float = 120) -> None:
    """Scaling down may keep the worker that is still loading the model. Paused there, it
    holds the request in the queue, not in a batch, and its replacement answers it (200)."""
    until(lambda: server.model_status(MODEL) == ["READY"], timeout_s,
          "one READY worker after scaling to one", interval_s=0.2)  # fmt: skip


def post(server: TorchServe, text: str) -> int:
    response = server.request("inference", "POST", f"/predictions/{MODEL}", data=text.encode(),
                              headers={"Content-Type": "text/plain"}, timeout=120)  # fmt: skip
    return response.status_code


def answered_since(traffic: Traffic, moment: float) -> list[Outcome]:
    """The traffic's requests sent after `moment` and answered 200."""
    return [o for o in traffic.outcomes if o.started > moment and o.status == 200]


def test_killed_worker_is_replaced(own_server: TorchServe):
    [old_pid] = worker_pids(own_server, MODEL)
    held: dict[str, int] = {}
    # Idle and paused, the worker is handed the next request and never answers it.
    os.kill(old_pid, signal.SIGSTOP)
    victim = threading.Thread(target=lambda: held.update(status=post(own_server, "정말 좋다")))
    arrived = arrived_requests(own_server, MODEL)
    victim.start()
    until(lambda: arrived_requests(own_server, MODEL) > arrived
          and pending_requests(own_server, MODEL) == 0, 60,
          "the request taken from the queue into the paused worker's batch")  # fmt: skip
    with Traffic(own_server, [MODEL], concurrency=CLIENTS, bad_ratio=0) as traffic:
        until(lambda: pending_requests(own_server, MODEL) >= CLIENTS, 60,
              "every client queued behind the held batch")  # fmt: skip
        killed_at = time.monotonic()
        os.kill(old_pid, signal.SIGKILL)
        victim.join(timeout=120)
        # The first answers after the kill, and more: the replacement keeps answering.
        until(lambda: len(answered_since(traffic, killed_at)) > 2 * CLIENTS, 60,
              "the replacement answering requests sent after the kill")  # fmt: skip
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

