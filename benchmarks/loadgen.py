"""One load-generator run: wrk against an endpoint, and what it cost each process.

wrk (Debian's `wrk`) drives single-text JSON POSTs over keep-alive connections;
besides its req/s and latency percentiles, the CPU seconds spent meanwhile by
the server's process tree (frontend vs workers) and by wrk itself say where the
time goes, and TorchServe's own counters split latency into queue and inference.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import psutil
import requests

BODY = '{"text": "정말 재밌게 잘봤습니다! 배우들 연기도 좋고 음악도 최고"}'
# Each request carries the next review of the list (real lengths, so BERT's padding and the
# n-gram count are what users cause), cycling; every wrk thread walks the list from the start.
LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
{headers}
local bodies = {{
{bodies}
}}
local i = 0
request = function()
  i = i % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[i])
end
"""


class BenchError(RuntimeError):
    """The benchmark could not measure something; the message says what."""


@dataclass(frozen=True)
class Target:
    """An HTTP endpoint under load and the processes whose CPU time it costs."""

    label: str
    url: str
    headers: Mapping[str, str]
    pid: int  # root of the process tree serving it
    metrics_url: str | None = None  # TorchServe's Prometheus endpoint
    model: str | None = None


# --------------------------------------------------------------------------- wrk


def _unit_ms(text: str) -> float:
    value, unit = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def parse_wrk(output: str) -> dict[str, float]:
    """req/s, p50/p99 (ms), non-2xx responses and socket errors from `wrk --latency` output."""
    rps = re.search(r"Requests/sec:\s+([0-9.]+)", output)
    latency = dict(re.findall(r"^\s+(50|99)%\s+([0-9.]+(?:us|ms|s|m))\s*$", output, re.M))
    if not rps or set(latency) != {"50", "99"}:
        raise BenchError(f"cannot read wrk's output: {output.strip()[:300]!r}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return {
        "rps": float(rps.group(1)),
        "p50_ms": _unit_ms(latency["50"]),
        "p99_ms": _unit_ms(latency["99"]),
        "requests": int(re.search(r"(\d+) requests in", output).group(1)),
        "errors": (int(non_2xx.group(1)) if non_2xx else 0)
        + (sum(int(n) for n in socket_errors.groups()) if socket_errors else 0),
    }


def wrk_script(target: Target, texts: Sequence[str], work: Path) -> Path:
    """A wrk script POSTing `{"text": ...}` for each of `texts` in turn, with target's headers."""
    headers = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in target.headers.items())
    bodies = [json.dumps({"text": text}, ensure_ascii=False) for text in texts]
    quoted = ",\n".join(f"[==[{body}]==]" for body in bodies if "]==]" not in body)
    script = work / f"{target.label}.lua"
    script.write_text(LUA.format(headers=headers, bodies=quoted), encoding="utf-8")
    return script


def run_wrk(target: Target, concurrency: int, seconds: int, script: Path) -> dict[str, float]:
    """One wrk run against `target`; also the CPU seconds the server and wrk spent in it."""
    command = [
        "wrk",
        f"-t{min(2, concurrency)}",
        f"-c{concurrency}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        str(script),
        target.url,
    ]
    before_metrics = ts_latency_counters(target)
    before_cpu = process_cpu(target.pid)
    wrk_before = _children_cpu()
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        message = (result.stderr or result.stdout).strip()[:300]
        raise BenchError(f"wrk failed ({result.returncode}): {message}")
    measured = parse_wrk(result.stdout)
    after_cpu = process_cpu(target.pid)
    requests_done = max(measured["requests"], 1)
    for group in after_cpu:
        spent = after_cpu[group] - before_cpu.get(group, 0.0)
        measured[f"cpu_ms_per_req_{group}"] = 1e3 * spent / requests_done
    measured["cpu_ms_per_req_wrk"] = 1e3 * (_children_cpu() - wrk_before) / requests_done
    after_metrics = ts_latency_counters(target)
    counted = after_metrics.get("requests", 0) - before_metrics.get("requests", 0)
    for name in ("queue_us", "inference_us"):
        if counted > 0 and name in after_metrics:
            spent = after_metrics[name] - before_metrics.get(name, 0.0)
            measured[f"ts_{name[:-3]}_ms"] = spent / counted / 1e3
    return measured


def _children_cpu() -> float:
    usage = os.times()
    return usage.children_user + usage.children_system


def process_cpu(pid: int) -> dict[str, float]:
    """CPU seconds so far of a server's process tree: the root (frontend) and its children."""
    try:
        root = psutil.Process(pid)
        children = root.children(recursive=True)
        times = root.cpu_times()
    except psutil.Error:
        return {}
    spent = {"frontend": times.user + times.system, "workers": 0.0}
    for child in children:
        try:
            child_times = child.cpu_times()
        except psutil.Error:
            continue
        spent["workers"] += child_times.user + child_times.system
    return spent


def ts_latency_counters(target: Target) -> dict[str, float]:
    """TorchServe's cumulative request count and queue/inference microseconds for the model."""
    if not target.metrics_url:
        return {}
    text = requests.get(target.metrics_url, timeout=5).text
    names = {
        "ts_inference_requests_total": "requests",
        "ts_queue_latency_microseconds": "queue_us",
        "ts_inference_latency_microseconds": "inference_us",
    }
    counters: dict[str, float] = {}
    for line in text.splitlines():
        metric, _, value = line.rpartition(" ")
        name = metric.split("{")[0]
        if name in names and f'model_name="{target.model}"' in metric:
            counters[names[name]] = counters.get(names[name], 0.0) + float(value)
    return counters
