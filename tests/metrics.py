"""Reading TorchServe's Prometheus endpoint in tests: totals by name and labels, and deltas.

Counters are shared by every test that talks to the session's server, so a test asserts on
what changed across its own requests, never on a value that earlier tests may have made true.
The handler's metrics reach /metrics through the worker's log a moment after the answer, so a
delta is awaited (briefly) before it is compared.
"""

from __future__ import annotations

import re
import time
from typing import Mapping

import requests

from scripts.ops.server import TorchServe

SAMPLE = re.compile(r"^(\w+)\{([^}]*)\} ([0-9.eE+-]+)$", re.M)
LABEL = re.compile(r'(\w+)="([^"]*)"')


def totals(server: TorchServe) -> str:
    return requests.get(server.url("metrics", "/metrics"), timeout=10).text


def total(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include all of `labels`."""
    found = 0.0
    for sample, label_text, value in SAMPLE.findall(text):
        if sample == name and labels.items() <= dict(LABEL.findall(label_text)).items():
            found += float(value)
    return found


def deltas(server: TorchServe, before: str, wanted: Mapping[tuple[str, tuple], float],
           timeout: float = 15.0) -> dict[tuple[str, tuple], float]:
    """{(name, labels): change since `before`}, once every change has reached its wanted
    value or `timeout` has passed; the caller compares."""
    deadline = time.monotonic() + timeout
    while True:
        now = totals(server)
        changes = {key: total(now, key[0], **dict(key[1])) - total(before, key[0], **dict(key[1]))
                   for key in wanted}  # fmt: skip
        if all(changes[key] >= wanted[key] for key in wanted) or time.monotonic() > deadline:
            return changes
        time.sleep(0.2)


def key(name: str, **labels: str) -> tuple[str, tuple]:
    return name, tuple(sorted(labels.items()))
