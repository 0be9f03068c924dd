"""Where a served model's worker spends its time: py-spy on TorchServe's workers under wrk.

Serves one variant (as benchmarks/bench.py builds it) in a TorchServe of its own, drives it
with wrk, samples every worker with `py-spy record` meanwhile, and prints the share of the
samples in each part of a request's path through the worker (TorchServe's protocol, the
handler's decoding, the model, encoding, metrics, logging).  py-spy is not a requirement:

    .venv/bin/pip install py-spy
    python -m benchmarks.profile_worker --server fast -c 32 --seconds 10
    python -m benchmarks.profile_worker --server fast_0 --variant fast_0=sentiment_fast:rev=HEAD~3

On a loaded machine a worker woken for its next batch but waiting for a core is sampled where
it waits (the first read of TorchServe's protocol): that share is CPU contention.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import psutil

from benchmarks.bench import VARIANTS, build_variants, parse_variant, torchserve, torchserve_targets
from benchmarks.loadgen import BenchError, wrk_script
from scripts.nsmc import read_test_reviews
from scripts.packaging.build_archive import ensure_artifacts

# (category, substrings of a stack), the first that matches a sampled stack counts it
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("model: sklearn input checks", ("validate_params", "validate_data", "check_array",
                                     "_check_feature_names", "is_into_dataframe")),
    ("model: BERT (tokenizer, ONNX Runtime)", ("SentimentBertHandler",)),
    ("model: vectorize + score", ("scorer.<locals>.predict_proba",)),
    ("TorchServe: its HandlerTime/PredictionTime metrics", ("add_time",)),
    ("TorchServe: 'Backend received inference' log line", ("otf_message_handler.py:38)",)),
    ("TorchServe: protocol, first read (waits for a batch)", ("otf_message_handler.py:33)",)),
    ("TorchServe: protocol, decoding the batch", ("retrieve_msg",)),
    ("TorchServe: request dicts", ("retrieve_data_for_inference",)),
    ("TorchServe: response framing", ("create_predict_response",)),
    ("TorchServe: sending the response", ("model_service_worker.py:187)",)),
    ("handler: metrics", ("_record_metrics", "add_metric", "BatchMetrics")),
    ("handler: decoding requests", ("SentimentHandler.preprocess",)),
    ("handler: encoding responses", ("SentimentHandler.postprocess",)),
    ("handler: other", ("handlers/",)),
    ("logging", ("logging/__init__",)),
)  # fmt: skip


def read_raw(path: Path) -> Iterator[tuple[str, int]]:
    """(stack, samples) from py-spy's raw (collapsed) format: `frame;frame;... count`."""
    for line in path.read_text(encoding="utf-8").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            yield stack, int(count)


def categorize(stacks: Iterable[tuple[str, int]]) -> Counter:
    """Samples per category; a stack no category names counts under its innermost frame."""
    shares: Counter = Counter()
    for stack, count in stacks:
        name = next((name for name, keys in CATEGORIES if any(k in stack for k in keys)),
                    f"other: {stack.split(';')[-1][:80]}")  # fmt: skip
        shares[name] += count
    return shares


def worker_pids(frontend: int) -> list[int]:
    """TorchServe's Python workers under the frontend's process."""
    children = psutil.Process(frontend).children(recursive=True)
    return [p.pid for p in children if "model_service_worker" in " ".join(p.cmdline())]


def py_spy() -> str | None:
    """The py-spy beside this Python (a venv's bin/ is not always on PATH), else on PATH."""
    beside_python = Path(sys.executable).parent / "py-spy"
    return str(beside_python) if beside_python.exists() else shutil.which("py-spy")


def record(pids: Sequence[int], seconds: int, out: Path) -> list[Path]:
    """py-spy record every pid at once for `seconds`, raw format; the files written."""
    files = [out / f"worker-{pid}.txt" for pid in pids]
    spies = [subprocess.Popen([py_spy(), "record", "-p", str(pid), "-d", str(seconds), "-r", "200",
                               "-f", "raw", "-o", str(path)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
             for pid, path in zip(pids, files)]  # fmt: skip
    for spy in spies:
        spy.wait()
    return [path for path in files if path.exists()]


def profile(args: argparse.Namespace, work: Path) -> Counter:
    """Serve args.server, load it with wrk, sample its workers; samples per category."""
    variant = {**VARIANTS, **{v.label: v for v in args.variant}}[args.server]
    texts, _ = read_test_reviews(args.data_dir, 2000)
    sources = {variant.model: ensure_artifacts(variant.model, args.data_dir)}
    build_variants([variant], sources, work / "store", work)
    with torchserve(work / "store", [variant.label], variant.ts_props, work) as server:
        [target] = torchserve_targets(server, [variant.label])
        script = wrk_script(target, texts, work)
        wrk = ["wrk", f"-t{min(2, args.concurrency)}", f"-c{args.concurrency}", "-s", str(script)]
        subprocess.run([*wrk, "-d3s", target.url], capture_output=True, check=True)  # warm up
        load = subprocess.Popen([*wrk, f"-d{args.seconds + 3}s", target.url],
                                stdout=subprocess.PIPE, text=True)  # fmt: skip
        time.sleep(1)
        files = record(worker_pids(server.pid()), args.seconds, args.out)
        print(load.communicate()[0].strip().splitlines()[-2])  # Requests/sec
    return categorize(stack for path in files for stack in read_raw(path))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", default="fast", help="a bench variant label (default fast)")
    parser.add_argument("--variant", type=parse_variant, action="append", default=[])
    parser.add_argument("-c", "--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--data-dir", help="NSMC directory (default: $NSMC_DIR or data/nsmc)")
    parser.add_argument("--out", type=Path, default=Path("build/profile"),
                        help="py-spy's raw stacks, one file per worker")  # fmt: skip
    args = parser.parse_args(argv)
    if not py_spy() or not shutil.which("wrk"):
        print("error: needs py-spy (.venv/bin/pip install py-spy) and wrk", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix="ts-profile-", dir="/tmp") as work:
            shares = profile(args, Path(work))
    except (BenchError, OSError, subprocess.CalledProcessError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    total = sum(shares.values()) or 1
    print(f"{total} samples of {args.server}'s workers at c={args.concurrency}")
    for name, samples in shares.most_common(20):
        print(f"{100 * samples / total:5.1f} %  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
