"""SIGKILL a model worker under traffic: TorchServe replaces it and requests succeed again.

Runs its own TorchServe (sentiment_fast only) so the session server's workers stay alive.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Iterator

import pytest

from benchmarks.soak import Traffic, processes
from scripts.ops.server import TorchServe
from tests.conftest import local_server

MODEL = "sentiment_fast"
RECOVERY_LIMIT_S = 10  # the bound, from the kill to the first answer after it


@pytest.fixture(scope="module")
def own_server(model_store: Path) -> Iterator[TorchServe]:
    with local_server(model_store, [MODEL], "ts-crash-") as instance:
        yield instance


def test_killed_worker_is_replaced(own_server: TorchServe):
    with Traffic(own_server, [MODEL], concurrency=8, bad_ratio=0) as traffic:
        time.sleep(2)
        workers_before = worker_pids(own_server)
        old_pid = min(workers_before)
        killed_at = time.monotonic()
        os.kill(old_pid, signal.SIGKILL)
        deadline = killed_at + 60
        while time.monotonic() < deadline and not any(
            o.started > killed_at and o.status == 200 for o in traffic.outcomes
        ):
            time.sleep(0.1)
        time.sleep(1)  # and the replacement keeps answering
    after = [o for o in traffic.outcomes if o.started + o.latency > killed_at]
    recovered = [o for o in after if o.started > killed_at and o.status == 200]
    assert recovered, "no request succeeded within 60 s of the kill"
    recovery = min(o.started + o.latency for o in recovered) - killed_at
    failed = [o for o in after if o.status != 200]
    print(f"worker {old_pid} killed: {len(failed)} of {len(after)} requests in flight or sent "
          f"after it failed ({sorted({o.status for o in failed})}); first success after "
          f"{recovery:.1f} s")  # fmt: skip
    assert recovery < RECOVERY_LIMIT_S, (
        f"first success {recovery:.1f} s after the kill (load average {os.getloadavg()[0]:.1f}: "
        "the new worker's torch import and model load are most of it)"
    )
    assert all(o.started < killed_at + recovery for o in failed), "failures after recovery"
    # With several workers the others answer at once; the killed one must still be replaced.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        workers_after = worker_pids(own_server)
        statuses = own_server.model_status(MODEL)
        if (
            old_pid not in workers_after
            and len(workers_after) == len(workers_before)
            and set(statuses) == {"READY"}
        ):
            break
        time.sleep(0.5)
    assert old_pid not in workers_after and len(workers_after) == len(workers_before)
    assert set(own_server.model_status(MODEL)) == {"READY"}


def worker_pids(server: TorchServe) -> set[int]:
    return {pid for label, pid in processes(server).items() if label.startswith(f"{MODEL} worker")}
