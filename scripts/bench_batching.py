"""Served throughput and latency of one model with its configured batching vs batch size 1.

Builds both archives into a temporary model store, starts each on its own free
ports, warms it up, drives it with wrk (Debian's `wrk` package) from a separate
process on 127.0.0.1, stops it, and prints a Markdown table. Each variant is
measured `--rounds` times, interleaved, and the medians reported.

    python -m scripts.bench_batching sentiment_bert --concurrency 16 --seconds 15
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Sequence

import yaml

from scripts.build_archive import MODELS, build_archive, ensure_artifacts
from scripts.server import Ports, TorchServe

BODY = '{"text": "정말 재밌게 잘봤습니다! 배우들 연기도 좋고 음악도 최고"}'
LUA = """wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
"""


def _unit_ms(value: str, unit: str) -> float:
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def run_wrk(server: TorchServe, model: str, concurrency: int, seconds: int, work: Path) -> dict:
    """req/s, p50 and p99 (ms), and non-2xx count of one wrk run."""
    script = work / "post.lua"
    script.write_text(LUA.format(body=BODY, key=server.keys()["inference"]), encoding="utf-8")
    url = server.url("inference", f"/predictions/{model}")
    threads = min(2, concurrency)
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{concurrency}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+([0-9.]+(?:us|ms|s))$", out, re.M))
    parse = {k: _unit_ms(*re.match(r"([0-9.]+)(us|ms|s)", v).groups()) for k, v in latency.items()}
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1)),
        "p50_ms": parse["50"],
        "p99_ms": parse["99"],
        "errors": int(non_2xx.group(1)) if non_2xx else 0,
    }


def bench(model: str, concurrency: int, seconds: int, rounds: int) -> dict[str, dict]:
    if not shutil.which("wrk"):
        raise SystemExit("wrk not found: apt-get install wrk")
    spec = MODELS[model]
    configured = yaml.safe_load(spec.config_file.read_text())
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-", dir="/tmp") as tmp:
        work = Path(tmp)
        variants = {}
        for label, batch_size in (
            (f"batch {configured['batchSize']}", configured["batchSize"]),
            ("batch 1", 1),
        ):
            config = dict(configured, batchSize=batch_size)
            config_file = work / f"{batch_size}.yaml"
            config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
            store = work / f"store{batch_size}"
            build_archive(spec, ensure_artifacts(model, None), store, config_file=config_file)
            variants[label] = store
        for _ in range(rounds):
            for label, store in variants.items():
                run_dir = Path(tempfile.mkdtemp(prefix="ts-", dir=work))
                server = TorchServe(run_dir, Ports.free(), store, models=(model,))
                server.start()
                try:
                    server.wait_ready(timeout=300)
                    run_wrk(server, model, concurrency, 3, work)  # warm-up
                    results.setdefault(label, []).append(
                        run_wrk(server, model, concurrency, seconds, work)
                    )
                finally:
                    server.stop()
    return {
        label: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        for label, runs in results.items()
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", choices=sorted(MODELS))
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    medians = bench(args.model, args.concurrency, args.seconds, args.rounds)
    print(f"\n{args.model}, c={args.concurrency}, {args.seconds}s x {args.rounds} rounds, medians")
    print("| variant | req/s | p50 ms | p99 ms | non-2xx |\n|---|---|---|---|---|")
    for label, m in medians.items():
        row = (
            label,
            f"{m['rps']:.0f}",
            f"{m['p50_ms']:.1f}",
            f"{m['p99_ms']:.1f}",
            f"{m['errors']:.0f}",
        )
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
