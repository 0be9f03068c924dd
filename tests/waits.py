"""Waiting for a server-side condition with a deadline, instead of sleeping a fixed time.

A fixed sleep is too short on a loaded machine (the test then checks nothing, or flakes) and
too long everywhere else; the state TorchServe reports (a worker's status, its job queue, its
request counter, its logs) says when the moment has come.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

from scripts.ops.server import TorchServe
from tests.metrics import total, totals
from tests.served import describe

T = TypeVar("T")


def until(condition: Callable[[], T], timeout_s: float, what: str, interval_s: float = 0.1) -> T:
    """Poll `condition` until it returns something truthy, and return that; fail the test
    naming `what` if `timeout_s` passes first."""
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s:.0f} s")
        time.sleep(interval_s)
    return value


def pending_requests(server: TorchServe, model: str) -> int:
    """Requests in `model`'s job queue that no worker has taken into a batch yet."""
    return int(describe(server, model)["jobQueueStatus"]["pendingRequests"])


def arrived_requests(server: TorchServe, model: str) -> float:
    """Inference requests the frontend has received for `model` (counted as it queues each)."""
    return total(totals(server), "ts_inference_requests_total", model_name=model)


# A worker's line in model_log.log: W-<port>-<model>_<version>-stdout MODEL_LOG - <message>
WORKER_LINE = re.compile(r" W-(\d+)-(\S+)_[\d.]+-stdout MODEL_LOG - (.*)$", re.M)


@dataclass
class WorkerRun:
    """One worker process of a model, as model_log.log tells its story."""

    pid: int
    after_failure: bool  # started after another worker of the model had logged `error`
    failed: bool = False  # logged `error` itself


def worker_runs(server: TorchServe, model: str, error: str) -> list[WorkerRun]:
    """Every worker process `model` had, in start order: a worker logs [PID] as it starts, and
    TorchServe's retry of a failed worker is a new process on the same port."""
    log = (server.log_dir / "model_log.log").read_text(encoding="utf-8", errors="replace")
    runs: dict[str, WorkerRun] = {}  # the latest run on each port
    every: list[WorkerRun] = []
    for port, name, message in WORKER_LINE.findall(log):
        if name != model:
            continue
        if message.startswith("[PID]"):
            failed_before = any(run.failed for run in every)
            runs[port] = WorkerRun(int(message.removeprefix("[PID]")), failed_before)
            every.append(runs[port])
        elif error in message and port in runs:
            runs[port].failed = True
    return every
