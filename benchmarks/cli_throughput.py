"""Throughput of the `sentiment` command on the NSMC test file (50k reviews), per model.

    python -m benchmarks.cli_throughput                       # model_store/, both models
    python -m benchmarks.cli_throughput --store /tmp/store --batch-size 128 --concurrency 4

Starts its own TorchServe on free ports, writes the test reviews one per line,
runs `python -m sentiment_client predict --file ...` for each model exactly as
a user would, and prints wall time, reviews/s and the line counts.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

from scripts.nsmc import TEST_FILE, resolve_data_dir
from scripts.ops.server import Ports, TorchServe
from scripts.registry import DEFAULT_STORE, ROOT


def reviews_file(data_dir: Path, out: Path) -> int:
    """The test file's documents, one per line (empty ones kept: the CLI must answer them too)."""
    rows = (data_dir / TEST_FILE).read_text(encoding="utf-8").splitlines()[1:]
    out.write_text("\n".join(row.split("\t")[1] for row in rows) + "\n", encoding="utf-8")
    return len(rows)


def run_cli(server: TorchServe, model: str, reviews: Path, out: Path, extra: Sequence[str]) -> str:
    command = [sys.executable, "-m", "sentiment_client", "predict", "--file", str(reviews),
               "--model", model, "--out", str(out), "--quiet", "--url", server.url("inference"),
               "--key-file", str(server.run_dir / "key_file.json"), *extra]  # fmt: skip
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    lines = len(out.read_text(encoding="utf-8").splitlines())
    refused = result.stderr.strip().splitlines()[-1] if result.returncode == 1 else "none"
    return (f"{model}: {lines:,} lines in {seconds:.1f} s = {lines / seconds:,.0f} reviews/s "
            f"(exit {result.returncode}; refused: {refused})")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", type=Path, default=DEFAULT_STORE)
    parser.add_argument("--data-dir", help="NSMC directory (default: $NSMC_DIR or data/nsmc)")
    parser.add_argument("--models", nargs="+", default=["fast", "bert"])
    parser.add_argument("--batch-size", default="256")
    parser.add_argument("--concurrency", default="4")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="ts-bench-cli-"))
    server = TorchServe(run_dir=work / "ts", ports=Ports.free(), model_store=args.store)
    count = reviews_file(resolve_data_dir(args.data_dir), work / "reviews.txt")
    print(f"{count:,} reviews; batch size {args.batch_size}, concurrency {args.concurrency}")
    server.start()
    try:
        server.wait_ready(timeout=300)
        for model in args.models:
            extra = ["--batch-size", args.batch_size, "--concurrency", args.concurrency]
            print(run_cli(server, model, work / "reviews.txt", work / f"{model}.jsonl", extra))
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
