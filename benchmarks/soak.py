"""Soak test: hold mixed traffic against TorchServe, then report errors, p99 and memory growth.

Mixed traffic = both models, single texts (raw and JSON) and JSON lists, and a share of bad
bodies that must get their 400.  A pass is: no 5xx or connection error, every request the
answer it should get (200 or 400), no worker restarted, and the RSS of the frontend and of
each worker grown by less than --max-growth between the end of the warm-up and the end.

    python -m benchmarks.soak --seconds 600                 # own TorchServe on free ports
    python -m benchmarks.soak --run-dir run --seconds 60    # the instance `make serve` started
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Sequence
from urllib.parse import urlparse

import psutil
import requests

from scripts.ops.server import Ports, ServerError, TorchServe, read_properties
from scripts.registry import DEFAULT_MODELS, DEFAULT_STORE

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"
REVIEWS = (
    "정말 재밌게 잘봤습니다!", "최악의 영화 시간 낭비", "배우들 연기가 너무 좋았어요",
    "돈 아까운 졸작", "그냥 그래요 ㅋㅋ", "스토리가 지루하고 뻔하다", "인생 영화 또 보고 싶다",
    "this movie was great 최고", "음악이 아름답고 감동적", "중간에 나왔습니다",
)  # fmt: skip
# Bodies that must each get a 400 (and never disturb the requests batched with them).
BAD_BODIES = (
    (b'{"text": []}', JSON),
    (b'{"text": ', JSON),
    (b"\xff\xfe\xfa", TEXT),
    (b'{"text": null}', JSON),
    (b'{"text": "\\u0000"}', JSON),
    (json.dumps({"text": ["좋다"] * 300}).encode(), JSON),
)


class Outcome(NamedTuple):
    model: str
    started: float  # time.monotonic()
    latency: float  # seconds
    status: int  # HTTP status; 0 for a connection error or timeout
    bad: bool  # a body that must be refused with 400


def attach(run_dir: Path) -> TorchServe:
    """A running instance from its run dir: ports from the config.properties it was started with."""
    properties = read_properties(run_dir / "config.properties")
    port = {name: urlparse(properties[f"{name}_address"]).port
            for name in ("inference", "management", "metrics")}  # fmt: skip
    models = tuple(item.split("=")[0] for item in properties.get("load_models", "").split(","))
    return TorchServe(run_dir=run_dir, ports=Ports(**port), models=models)


def make_request(rng: random.Random, models: Sequence[str], bad_ratio: float):
    """(model, body, content type, bad?) for one request of the mix."""
    model = rng.choice(models)
    if rng.random() < bad_ratio:
        return (model, *rng.choice(BAD_BODIES), True)
    kind = rng.random()
    if kind < 0.35:
        return model, rng.choice(REVIEWS).encode(), TEXT, False
    if kind < 0.7:
        return model, json.dumps({"text": rng.choice(REVIEWS)}).encode(), JSON, False
    texts = rng.choices(REVIEWS, k=rng.randint(2, 8))
    return model, json.dumps({"text": texts}).encode(), JSON, False


class Traffic:
    """`concurrency` threads, each sending one request after another until stopped."""

    def __init__(self, server: TorchServe, models: Sequence[str], concurrency: int = 64,
                 bad_ratio: float = 0.05, seed: int = 0, timeout: float = 90) -> None:  # fmt: skip
        self.server, self.models, self.bad_ratio, self.timeout = server, models, bad_ratio, timeout
        self.outcomes: list[Outcome] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, args=(random.Random(seed + i),), daemon=True)
            for i in range(concurrency)
        ]

    def _loop(self, rng: random.Random) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            model, body, content_type, bad = make_request(rng, self.models, self.bad_ratio)
            headers = {"Content-Type": content_type}
            started = time.monotonic()
            try:
                status = self.server.request("inference", "POST", f"/predictions/{model}",
                                             session, data=body, headers=headers,
                                             timeout=self.timeout)  # fmt: skip
                code = status.status_code
            except requests.RequestException:
                code = 0
                session = requests.Session()
            self.outcomes.append(Outcome(model, started, time.monotonic() - started, code, bad))

    def __enter__(self) -> "Traffic":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def processes(server: TorchServe) -> dict[str, int]:
    """{"frontend": pid, "<model> worker": pid, ...}: the pid file, its children, describe."""
    frontend = server.pid()
    if frontend is None:
        raise ServerError(f"no TorchServe running from {server.run_dir}")
    children = {child.pid for child in psutil.Process(frontend).children(recursive=True)}
    found = {"frontend": frontend}
    for model in server.models:
        response = server.request("management", "GET", f"/models/{model}", timeout=10)
        response.raise_for_status()
        for i, worker in enumerate(response.json()[0]["workers"]):
            label = f"{model} worker" + (f" {i + 1}" if i else "")
            found[label] = int(worker["pid"])
    unknown = children - set(found.values())
    found.update({f"other child {pid}": pid for pid in sorted(unknown)})
    return found


def worker_pids(server: TorchServe, model: str) -> set[int]:
    """The pids of `model`'s workers (labels as `processes` names them)."""
    return {pid for label, pid in processes(server).items() if label.startswith(f"{model} worker")}


def rss(pids: dict[str, int]) -> dict[str, int]:
    """Resident set size in bytes of each process (0 if it is gone)."""
    sizes = {}
    for label, pid in pids.items():
        try:
            sizes[label] = psutil.Process(pid).memory_info().rss
        except psutil.NoSuchProcess:
            sizes[label] = 0
    return sizes


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


@dataclass
class Report:
    seconds: float
    outcomes: list[Outcome]
    pids_start: dict[str, int]
    pids_end: dict[str, int]
    rss_start: dict[str, int]
    rss_end: dict[str, int]
    max_growth: float = 0.10
    codes: Counter = field(init=False)

    def __post_init__(self) -> None:
        self.codes = Counter(outcome.status for outcome in self.outcomes)

    @property
    def server_errors(self) -> int:
        """5xx answers and requests that got no answer at all."""
        return sum(n for code, n in self.codes.items() if code >= 500 or code == 0)

    @property
    def unexpected(self) -> int:
        """Good requests not answered 200, bad ones not answered 400."""
        return sum(o.status != (400 if o.bad else 200) for o in self.outcomes)

    @property
    def restarted(self) -> list[str]:
        return [label for label, pid in self.pids_start.items() if self.pids_end.get(label) != pid]

    def growth(self, label: str) -> float:
        return self.rss_end.get(label, 0) / max(1, self.rss_start[label]) - 1

    @property
    def ok(self) -> bool:
        grown = [label for label in self.rss_start if self.growth(label) >= self.max_growth]
        return not (self.server_errors or self.unexpected or self.restarted or grown)

    def format(self) -> str:
        n = len(self.outcomes)
        non_2xx = {code: count for code, count in sorted(self.codes.items()) if code != 200}
        lines = [
            f"requests: {n} in {self.seconds:.0f} s ({n / self.seconds:.0f} req/s), "
            f"bad inputs sent: {sum(o.bad for o in self.outcomes)}",
            f"non-2xx by code: {non_2xx} (0 = no answer)",
            f"5xx or no answer: {self.server_errors}; unexpected answers: {self.unexpected}; "
            f"workers restarted: {self.restarted or 'none'}",
        ]
        for model in sorted({o.model for o in self.outcomes}):
            latencies = [o.latency for o in self.outcomes if o.model == model]
            lines.append(f"{model}: {len(latencies)} requests, "
                         f"p50 {percentile(latencies, 0.5) * 1000:.1f} ms, "
                         f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms")  # fmt: skip
        all_latencies = [o.latency for o in self.outcomes]
        lines.append(f"all: p99 {percentile(all_latencies, 0.99) * 1000:.1f} ms")
        for label, start in self.rss_start.items():
            end = self.rss_end.get(label, 0)
            lines.append(f"RSS {label} (pid {self.pids_start[label]}): {start / 2**20:.0f} MiB "
                         f"-> {end / 2**20:.0f} MiB ({self.growth(label):+.1%})")  # fmt: skip
        lines.append("PASS" if self.ok else f"FAIL (limit: RSS growth < {self.max_growth:.0%})")
        return "\n".join(lines)


def soak(server: TorchServe, seconds: float, concurrency: int = 64, bad_ratio: float = 0.05,
         warmup: float = 20, max_growth: float = 0.10, seed: int = 0) -> Report:  # fmt: skip
    """Warm up, take RSS, hold traffic for `seconds`, take RSS again; count what came back."""
    with Traffic(server, server.models, concurrency, bad_ratio, seed) as traffic:
        time.sleep(warmup)  # first batches allocate; growth is measured from a warm server
        pids_start = processes(server)
        rss_start = rss(pids_start)
        begin = time.monotonic()
        time.sleep(seconds)
        pids_end = processes(server)
        rss_end = rss(pids_end)
    counted = [outcome for outcome in traffic.outcomes if outcome.started >= begin]
    return Report(time.monotonic() - begin, counted, pids_start, pids_end, rss_start, rss_end,
                  max_growth)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=600, help="measured time (default 600)")
    parser.add_argument("--warmup", type=float, default=20, help="unmeasured seconds first")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--bad-ratio", type=float, default=0.05, help="share of bad bodies")
    parser.add_argument("--max-growth", type=float, default=0.10, help="RSS growth limit")
    parser.add_argument("--run-dir", type=Path, help="soak a running instance (e.g. run)")
    parser.add_argument("--model-store", type=Path, default=DEFAULT_STORE)
    args = parser.parse_args(argv)
    options = dict(seconds=args.seconds, concurrency=args.concurrency, bad_ratio=args.bad_ratio,
                   warmup=args.warmup, max_growth=args.max_growth)  # fmt: skip
    try:
        if args.run_dir:
            report = soak(attach(args.run_dir), **options)
        else:
            run_dir = Path(tempfile.mkdtemp(prefix="ts-soak-"))
            server = TorchServe(run_dir=run_dir, ports=Ports.free(),
                                model_store=args.model_store, models=DEFAULT_MODELS)  # fmt: skip
            with server.running(timeout=300):
                report = soak(server, **options)
    except (ServerError, OSError, requests.RequestException) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(report.format())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
