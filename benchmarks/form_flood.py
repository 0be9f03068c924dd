"""Form-decoder flood (CVE-2024-29025): N concurrent form-encoded bodies just under
max_request_size, each ~260k tiny fields, sent WITH the inference key (token authorization is
checked first), while a probe sends one normal JSON request at a time; reports the probe's
latencies during the flood, the flood's answers, and the frontend's RSS (peak and after).

Each run starts its own TorchServe (sentiment_fast, one worker, free ports of 127.0.0.1, its own
run dir and TMPDIR; always stopped), in one of three setups:

    uncapped   the frontend as before: no heap flags (the JVM takes 1/4 of the machine's memory)
    capped     the frontend with config.properties' vmargs (its heap cap), requests sent to it
    proxy      the capped frontend behind the front proxy (docker/nginx.conf, scripts.deploy.proxy)

    .venv/bin/python -m benchmarks.form_flood --runs uncapped:8 capped:8 capped:64 proxy:8 proxy:64 \\
        --model-store build/flood-store --out docs/security/form-flood.md
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Callable, Iterator, Sequence

import psutil
import requests

from benchmarks.soak import percentile
from scripts.deploy.proxy import Proxy
from scripts.ops.server import Ports, TorchServe, read_properties
from scripts.ops.ts_config import BASE_CONFIG, LOG4J_CONFIG
from scripts.registry import DEFAULT_STORE, ROOT

SETUPS = ("uncapped", "capped", "proxy")
MODEL = "sentiment_fast"
FORM = "application/x-www-form-urlencoded"
PROBE_BODY = '{"text": "정말 재밌게 잘봤습니다!"}'.encode()
MB = 1024 * 1024


def max_request_size(config: Path = BASE_CONFIG) -> int:
    return int(read_properties(config)["max_request_size"])


def form_body(limit: int | None = None) -> bytes:
    """`a=1&a=1&...` just under `limit` bytes (max_request_size): ~262k fields for 1 MiB."""
    limit = limit or max_request_size()
    fields = (limit - 16) // 4
    return b"&".join([b"a=1"] * fields)


def heap_flags(vmargs: str) -> str:
    """The memory flags of a vmargs line (-Xmx, -XX:MaxDirectMemorySize, ...)."""
    return " ".join(a for a in vmargs.split() if a.startswith(("-Xm", "-XX:"))) or "none"


@dataclass
class Sample:
    started: float  # time.monotonic()
    latency: float
    status: int  # 0 = no answer (connection error or timeout)


@dataclass
class FloodRun:
    setup: str
    bodies: int
    heap: str
    flood_answers: Counter = field(default_factory=Counter)
    flood_s: float = 0.0
    probes: list[Sample] = field(default_factory=list)
    flood_window: tuple[float, float] = (0.0, 0.0)
    rss_before: int = 0
    rss_peak: int = 0
    rss_after: int = 0
    proxy_rss_peak: int = 0
    worker_rss_peak: int = 0  # the model's Python worker(s), which get the decoded fields
    out_of_memory: int = 0  # OutOfMemoryError / netty's OutOfDirectMemoryError in the logs
    ready_after: bool = False
    answered_after: bool = False

    def during(self) -> list[Sample]:
        start, end = self.flood_window
        return [s for s in self.probes if start <= s.started <= end]

    def p(self, q: float) -> float:
        return percentile([s.latency for s in self.during()], q)

    def probe_failures(self) -> int:
        return sum(1 for s in self.during() if s.status != 200)


class Sampler(threading.Thread):
    """Peak RSS of a set of processes (`pids()`, asked each time), every 0.1 s, until stopped."""

    def __init__(self, pids: Callable[[], Sequence[int]]):
        super().__init__(daemon=True)
        self.pids, self.peak, self.done = pids, 0, threading.Event()

    def current(self) -> int:
        total = 0
        for pid in self.pids():
            try:
                total += psutil.Process(pid).memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, self.current())
            self.done.wait(0.1)


class Prober(threading.Thread):
    """One normal JSON request at a time (then 0.1 s pause), each latency recorded."""

    def __init__(self, url: str, headers: dict[str, str], timeout: float = 60):
        super().__init__(daemon=True)
        self.url, self.headers, self.timeout = url, headers, timeout
        self.samples: list[Sample] = []
        self.done = threading.Event()

    def run(self) -> None:
        session = requests.Session()
        while not self.done.is_set():
            started = time.monotonic()
            try:
                status = session.post(self.url, data=PROBE_BODY, headers=self.headers,
                                      timeout=self.timeout).status_code  # fmt: skip
            except requests.RequestException:
                status, session = 0, requests.Session()
            self.samples.append(Sample(started, time.monotonic() - started, status))
            self.done.wait(0.1)


def children(pid: int) -> list[int]:
    """The frontend's worker processes (the key renewer is not its child)."""
    try:
        return [child.pid for child in psutil.Process(pid).children()]
    except psutil.NoSuchProcess:
        return []


def send_forms(url: str, key: str, body: bytes, count: int, timeout: float,
               min_seconds: float = 0) -> Counter:  # fmt: skip
    """`count` senders at once, each on its own connection, each sending form bodies one
    after the other until `min_seconds` have passed (at least one); the answers by status."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": FORM}
    started = time.monotonic()

    def sender(_: int) -> Counter:
        answers: Counter = Counter()
        with requests.Session() as session:
            while True:
                try:
                    answers[session.post(url, data=body, headers=headers,
                                         timeout=timeout).status_code] += 1  # fmt: skip
                except requests.RequestException:
                    answers[0] += 1
                if time.monotonic() - started >= min_seconds:
                    return answers

    with ThreadPoolExecutor(count) as pool:
        return sum(pool.map(sender, range(count)), Counter())


def flood(server: TorchServe, base_url: str, run: FloodRun, timeout: float = 300,
          quiet_s: float = 3, min_seconds: float = 10,
          proxy: Proxy | None = None) -> FloodRun:  # fmt: skip
    """Probe alone for `quiet_s`, flood for at least `min_seconds`, probe `quiet_s` more; RSS
    throughout."""
    key = server.keys()["inference"]
    url = f"{base_url}/predictions/{MODEL}"
    frontend = server.pid()
    probe_headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    prober, sampler = Prober(url, probe_headers), Sampler(lambda: [frontend])
    worker_sampler = Sampler(lambda: children(frontend))
    proxy_sampler = Sampler(proxy.pids if proxy else list)
    run.rss_before = sampler.current()
    threads = (prober, sampler, worker_sampler, proxy_sampler)
    for thread in threads:
        thread.start()
    time.sleep(quiet_s)
    started = time.monotonic()
    run.flood_answers = send_forms(url, key, form_body(), run.bodies, timeout, min_seconds)
    run.flood_s = time.monotonic() - started
    run.flood_window = (started, started + run.flood_s)
    time.sleep(quiet_s)
    for thread in threads:
        thread.done.set()
        thread.join()
    run.probes, run.rss_peak, run.proxy_rss_peak = prober.samples, sampler.peak, proxy_sampler.peak
    run.worker_rss_peak = worker_sampler.peak
    run.rss_after = sampler.current()
    run.ready_after = "READY" in server.model_status(MODEL)
    after = requests.post(url, data=PROBE_BODY, headers=probe_headers, timeout=60)
    run.answered_after = after.status_code == 200
    logs = "".join(p.read_text(errors="replace") for p in server.log_dir.glob("*.log"))
    run.out_of_memory = len(re.findall(r"OutOf(?:Direct)?MemoryError", logs))
    return run


@contextmanager
def setup_server(setup: str, model_store: Path) -> Iterator[tuple[TorchServe, str, Proxy | None]]:
    """A fresh TorchServe for `setup`, and the URL the requests go to."""
    run_dir = Path(tempfile.mkdtemp(prefix="ts-flood-"))
    ports = Ports.free()
    properties = {}
    if setup == "uncapped":  # the vmargs TorchServe got before the heap cap, paths rendered
        properties["vmargs"] = (f"-Dlog4j.configurationFile=file:{LOG4J_CONFIG} "
                                f"-Djava.io.tmpdir={run_dir / 'tmp'}")  # fmt: skip
    server = TorchServe(run_dir=run_dir, ports=ports, model_store=model_store, models=(MODEL,),
                        properties=properties)  # fmt: skip
    try:
        with ExitStack() as stack:
            stack.enter_context(server.running(timeout=300))
            proxy = None
            if setup == "proxy":
                proxy = stack.enter_context(Proxy(f"127.0.0.1:{ports.inference}").running())
            yield server, proxy.url() if proxy else ports.url("inference"), proxy
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def measure(setup: str, bodies: int, model_store: Path = DEFAULT_STORE) -> FloodRun:
    if setup not in SETUPS:
        raise ValueError(f"setup {setup!r}: one of {', '.join(SETUPS)}")
    with setup_server(setup, model_store) as (server, base_url, proxy):
        vmargs = read_properties(server.config_path)["vmargs"]
        return flood(server, base_url, FloodRun(setup, bodies, heap_flags(vmargs)), proxy=proxy)


def mb(size: int) -> str:
    return f"{size / MB:,.0f}"


def markdown(runs: Sequence[FloodRun], command: str) -> str:
    load = " / ".join(f"{x:.1f}" for x in psutil.getloadavg())
    lines = [
        "# Form-decoder flood (CVE-2024-29025): measured",
        "",
        "Generated by `benchmarks/form_flood.py`; do not edit by hand. Made with:",
        "",
        f"    {command}",
        "",
        f"{date.today().isoformat()}, {psutil.cpu_count()} cores shared with other work (load "
        f"average at the end {load}), client and server on 127.0.0.1. Each run: a fresh "
        f"TorchServe ({MODEL}, one worker); a probe sends one JSON request at a time (0.1 s "
        f"apart) while N form-encoded bodies of {len(form_body()):,} bytes "
        f"({form_body().count(b'&') + 1:,} fields each) are sent at once with the inference "
        "key. Probe latencies are those of the requests started during the flood; RSS is the "
        "frontend JVM's, the model worker's and the proxy's, each in its column.",
        "",
        "| setup | bodies | heap flags | flood answers | flood took | probe requests | probe "
        "p50 / p99 / max | probe failures | frontend RSS before → peak → after (MB) | worker RSS "
        "peak (MB) | proxy RSS peak (MB) | OutOfMemoryError in logs | READY and answering after |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        answers = ", ".join(f"{k or 'no answer'} × {v}" for k, v in sorted(run.flood_answers.items()))
        during = run.during()
        lines.append(
            f"| {run.setup} | {run.bodies} | `{run.heap}` | {answers} | {run.flood_s:.1f} s | "
            f"{len(during)} | {run.p(0.5) * 1000:,.0f} / {run.p(0.99) * 1000:,.0f} / "
            f"{max((s.latency for s in during), default=float('nan')) * 1000:,.0f} ms | "
            f"{run.probe_failures()} | {mb(run.rss_before)} → {mb(run.rss_peak)} → "
            f"{mb(run.rss_after)} | {mb(run.worker_rss_peak)} | {mb(run.proxy_rss_peak) if run.setup == 'proxy' else '—'} | "
            f"{run.out_of_memory} | {'yes' if run.ready_after and run.answered_after else 'NO'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", nargs="+", default=["capped:8", "proxy:8"],
                        help="setup:bodies, setup one of " + ", ".join(SETUPS))
    parser.add_argument("--model-store", type=Path, default=DEFAULT_STORE)
    parser.add_argument("--out", type=Path, help="write the markdown report here")
    args = parser.parse_args(argv)
    runs = []
    for spec in args.runs:
        setup, _, bodies = spec.partition(":")
        run = measure(setup, int(bodies or 8), args.model_store)
        runs.append(run)
        print(markdown([run], "").splitlines()[-1], flush=True)
    if args.out:
        argv_text = " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
        command = f".venv/bin/python -m benchmarks.form_flood {argv_text}"
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(markdown(runs, command), encoding="utf-8")
        print(f"wrote {args.out.relative_to(ROOT) if args.out.is_absolute() else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
