"""Served throughput and latency of TorchServe against the seed-style FastAPI app, with ceilings.

Starts everything it measures on free ports in its own /tmp run dir: one
TorchServe serving every variant (sentiment_fast, sentiment_bert with its
configured batching and with batch 1, or any `--variant`), and the reference
app (benchmarks/reference_app.py, uvicorn, 2 workers; as the seed runs it and
with TCP_NODELAY fixed).  wrk (Debian's `wrk`) drives each from a separate
process on 127.0.0.1 with single-text JSON bodies, NSMC test reviews in turn;
every (concurrency, server) point is measured once per round, servers rotated
within a round, and the medians over rounds reported.  Beside req/s and
latency it records the CPU each process group spent per request (where the
time goes: frontend, workers, load generator) and TorchServe's queue and
inference latency counters.  The in-process ceilings call each archive's
handler directly, in batches, through the handler's own load path.

    python -m benchmarks.bench                                   # ~20 min on 2 cores
    python -m benchmarks.bench --servers fast,reference -c 1,32 --rounds 2
    python -m benchmarks.bench --servers fast,bert,cascade -c 1,16,32   # the three endpoints
    python -m benchmarks.bench --servers fast,fast_d5 \
        --variant fast_d5=sentiment_fast:maxBatchDelay=5
    python -m benchmarks.bench --servers base_int8 --artifacts sentiment_bert=/tmp/base \
        --variant base_int8=sentiment_bert:handler.runtime=onnx-int8   # any checkpoint
    python -m benchmarks.bench --servers fast,fast_before \
        --variant fast_before=sentiment_fast:rev=HEAD~1    # a change against its parent

A variant that sets `handler.runtime` of a model built from a checkpoint gets an archive of
that runtime alone (`build_archive --runtime`), as it would be deployed.  A variant with
`rev=<git revision>` packs the handlers/ package of that revision: a change and its parent
measured in the same run, interleaved, on the same machine load.

Writes <out>/results.json, <out>/bench.png and <out>/report.md (printed at the end).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence
from unittest import mock

import requests
import yaml

from benchmarks.loadgen import BODY, BenchError, Target, run_wrk, wrk_script
from benchmarks.report import (
    REFERENCE,
    REFERENCE_NODELAY,
    REFERENCES,
    medians,
    targets_met,
    write_report,
)
from scripts.inprocess import load_archive, texts_per_second
from scripts.nsmc import read_test_reviews
from scripts.ops.server import BASE_CONFIG, LOG4J_CONFIG, Ports, TorchServe, read_properties
from scripts.packaging import build_archive as packaging
from scripts.packaging.build_archive import ensure_artifacts
from scripts.registry import MODELS, ROOT

DEFAULT_SERVERS = ("fast", "bert", "bert_b1", REFERENCE, REFERENCE_NODELAY)
DEFAULT_CONCURRENCY = (1, 8, 16, 32, 64)
DEFAULT_OUT = ROOT / "build" / "bench"
LOAD_TEXTS = 2000  # test reviews wrk sends in turn; the in-process ceilings use the first ones
CEILING_TEXTS = 1000


# --------------------------------------------------------------------------- what to measure


@dataclass(frozen=True)
class Variant:
    """One model registration: an archive named `label`, built with model-config overrides.

    Keys `handler.<k>` go to the handler section, `ts.<k>` to config.properties (variants
    with different `ts.` keys get their own TorchServe; `ts.log4j=<file>` replaces
    log4j2.xml), the rest to model-config.yaml; `rev` is the git revision whose handlers/
    the archive packs (None: the working tree).
    """

    label: str
    model: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    rev: str | None = None

    @property
    def runtime(self) -> str | None:
        """The runtime its archive is built for (handler.runtime of a model with a build step)."""
        if MODELS[self.model].prepare is None:
            return None
        return self.overrides.get("handler.runtime")

    @property
    def ts_props(self) -> dict[str, str]:
        return {k[3:]: str(v) for k, v in self.overrides.items() if k.startswith("ts.")}

    def model_config(self) -> dict[str, Any]:
        config = yaml.safe_load(MODELS[self.model].config_file.read_text())
        for key, value in self.overrides.items():
            if key.startswith("handler."):
                config.setdefault("handler", {})[key[len("handler.") :]] = value
            elif not key.startswith("ts."):
                config[key] = value
        return config


REV_KEY = "rev"  # --variant key: measure the handlers of another git revision
VARIANTS = {
    "fast": Variant("fast", "sentiment_fast"),
    "bert": Variant("bert", "sentiment_bert"),
    "bert_b1": Variant("bert_b1", "sentiment_bert", {"batchSize": 1}),
    "cascade": Variant("cascade", "sentiment"),
}


def parse_variant(text: str) -> Variant:
    """`label=model[:key=value,...]`, e.g. `fast_d1=sentiment_fast:maxBatchDelay=1`."""
    match = re.fullmatch(r"(\w+)=(\w+)(?::(.*))?", text)
    if not match or match.group(2) not in MODELS:
        raise argparse.ArgumentTypeError(
            f"--variant {text!r}: expected label=model[:key=value,...] with model in "
            f"{', '.join(MODELS)}"
        )
    overrides = {}
    for pair in filter(None, (match.group(3) or "").split(",")):
        key, _, value = pair.partition("=")
        overrides[key] = value if key == REV_KEY else yaml.safe_load(value)  # 1 -> int, ...
    rev = overrides.pop(REV_KEY, None)
    return Variant(match.group(1), match.group(2), overrides, rev)


# --------------------------------------------------------------------------- servers


def handlers_at(rev: str, work: Path) -> Path:
    """The handlers/ package as committed at git revision `rev`, exported under `work`."""
    out = work / ("handlers-" + re.sub(r"[^\w.-]", "_", rev))
    if not out.exists():
        tar = subprocess.run(["git", "archive", rev, "handlers"], cwd=ROOT, check=True,
                             capture_output=True).stdout  # fmt: skip
        out.mkdir(parents=True)
        subprocess.run(["tar", "-x", "-C", str(out)], input=tar, check=True)
    return out / "handlers"


@contextmanager
def packing_handlers(directory: Path | None) -> Iterator[None]:
    """build_archive packs `directory` as the handlers package meanwhile (None: the tree's)."""
    if directory is None:
        yield
        return
    with mock.patch.object(packaging, "HANDLERS_DIR", directory):
        yield


def build_variants(
    variants: Sequence[Variant], sources: Mapping[str, Path], store: Path, work: Path
) -> dict[str, Path]:
    """One archive per variant, named after its label, in `store`, from sources[model]."""
    archives = {}
    for variant in variants:
        config_file = work / f"{variant.label}.yaml"
        config_file.write_text(yaml.safe_dump(variant.model_config()), encoding="utf-8")
        handlers = handlers_at(variant.rev, work) if variant.rev else None
        with packing_handlers(handlers):
            archives[variant.label] = packaging.build_archive(
                MODELS[variant.model],
                sources[variant.model],
                store,
                archive_name=variant.label,
                config_file=config_file,
                runtime=variant.runtime,
            )
    return archives


@contextmanager
def torchserve(
    store: Path, labels: Sequence[str], props: Mapping[str, str], work: Path
) -> Iterator[TorchServe]:
    """A TorchServe on free ports serving `labels`, with config.properties overrides; stopped.

    The pseudo-property `log4j` names another log4j2.xml (to measure logging settings).
    """
    props = dict(props)
    log4j = Path(props.pop("log4j", LOG4J_CONFIG))
    run_dir = Path(tempfile.mkdtemp(prefix="ts-bench-", dir=work))
    base = run_dir / "base.properties"
    merged = {**read_properties(BASE_CONFIG), **props}
    base.write_text("".join(f"{k}={v}\n" for k, v in merged.items()))
    server = TorchServe(run_dir, Ports.free(), store, tuple(labels), base, log4j)
    with server.running(timeout=600):
        yield server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def reference_app(model_dir: Path, work: Path, label: str = REFERENCE) -> Iterator[Target]:
    """benchmarks/reference_app.py under uvicorn, 2 workers, on a free port; always ended.

    `reference_nodelay` is the same app with TCP_NODELAY forced (see the app's docstring).
    """
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "benchmarks.reference_app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "2",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    env = {
        **os.environ,
        "REFERENCE_MODEL_DIR": str(model_dir),
        "PYTHONPATH": str(ROOT),
        "REFERENCE_NODELAY": "1" if label == REFERENCE_NODELAY else "0",
    }
    log = open(work / f"{label}.log", "wb")
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}/predict"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise BenchError(f"the reference app exited; see {work / f'{label}.log'}")
            try:
                if requests.post(
                    url, data=BODY.encode(), timeout=2, headers={"Content-Type": "application/json"}
                ).ok:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise BenchError("the reference app did not answer within 120 s")
            time.sleep(0.5)
        yield Target(label, url, {}, process.pid)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def torchserve_targets(server: TorchServe, labels: Sequence[str]) -> list[Target]:
    headers = {"Authorization": server.auth("inference")["Authorization"]}
    pid = server.pid()
    return [
        Target(
            label,
            server.url("inference", f"/predictions/{label}"),
            headers,
            pid,
            server.url("metrics", "/metrics"),
            label,
        )
        for label in labels
    ]


# --------------------------------------------------------------------------- measuring


def measure(
    targets: Sequence[Target],
    concurrencies: Sequence[int],
    rounds: int,
    seconds: int,
    warmup: int,
    texts: Sequence[str],
    work: Path,
) -> list[dict]:
    """Every (round, concurrency, server) once; the server order rotates from round to round."""
    scripts = {target.label: wrk_script(target, texts, work) for target in targets}
    runs = []
    total = rounds * len(concurrencies) * len(targets)
    for round_ in range(rounds):
        order = [targets[(i + round_) % len(targets)] for i in range(len(targets))]
        for concurrency in concurrencies:
            for target in order:
                if warmup > 0:
                    run_wrk(target, concurrency, warmup, scripts[target.label])
                result = run_wrk(target, concurrency, seconds, scripts[target.label])
                runs.append(
                    {"round": round_, "server": target.label, "concurrency": concurrency, **result}
                )
                print(
                    f"[{len(runs)}/{total}] round {round_ + 1} c={concurrency:<3} "
                    f"{target.label:<12} {result['rps']:8.0f} req/s  p50 {result['p50_ms']:6.1f}"
                    f" ms  p99 {result['p99_ms']:6.1f} ms",
                    flush=True,
                )
    return runs


def ceilings(
    archives: Mapping[str, Path], variants: Mapping[str, Variant], texts: Sequence[str], work: Path
) -> dict[str, dict[str, float]]:
    """texts/s of each archive's handler called directly, at its batch size and at 1."""

    result = {}
    for label, archive in archives.items():
        config = variants[label].model_config()
        handler = load_archive(archive, work / f"inprocess-{label}")
        batch = int(config.get("batchSize", 1))
        result[label] = {
            "batch_size": batch,
            "texts_per_s": texts_per_second(handler, texts[:CEILING_TEXTS], batch),
            "texts_per_s_batch1": texts_per_second(handler, texts[:CEILING_TEXTS], 1),
            "runtime": getattr(handler, "runtime", "sklearn"),
        }
        print(
            f"in-process {label}: {result[label]['texts_per_s']:.0f} texts/s at batch {batch}, "
            f"{result[label]['texts_per_s_batch1']:.0f} at batch 1",
            flush=True,
        )
    return result


# --------------------------------------------------------------------------- CLI


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def parse_artifacts(text: str) -> tuple[str, Path]:
    """`--artifacts sentiment_bert=DIR`: measure that trained dir instead of the model's own."""
    model, _, directory = text.partition("=")
    if model not in MODELS or not directory:
        raise argparse.ArgumentTypeError(f"--artifacts {text!r}: expected model=DIR with model "
                                         f"in {', '.join(MODELS)}")  # fmt: skip
    return model, Path(directory)


def run(args: argparse.Namespace, artifacts: Mapping[str, Path] | None = None) -> dict:
    """Measure, and return the report; `artifacts` replaces a model's trained dir (tests)."""
    if not shutil.which("wrk"):
        raise BenchError("wrk not found: apt-get install wrk")
    variants = {**VARIANTS, **{v.label: v for v in args.variant}}
    unknown = [s for s in args.servers if s not in REFERENCES and s not in variants]
    if unknown:
        raise BenchError(f"unknown server(s) {', '.join(unknown)}; define them with --variant")
    chosen = [variants[s] for s in args.servers if s not in REFERENCES]
    references = [s for s in args.servers if s in REFERENCES]
    needed = {v.model for v in chosen} | ({"sentiment_fast"} if references else set())
    texts, _ = read_test_reviews(args.data_dir, LOAD_TEXTS)
    sources = {
        model: (artifacts or {}).get(model) or ensure_artifacts(model, args.data_dir)
        for model in needed
    }
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = os.getloadavg()
    with ExitStack() as stack:
        work = Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="ts-bench-", dir="/tmp"))
        )
        archives = build_variants(chosen, sources, work / "store", work)
        groups: dict[tuple, list[str]] = {}
        for variant in chosen:
            groups.setdefault(tuple(sorted(variant.ts_props.items())), []).append(variant.label)
        targets: dict[str, Target] = {}
        for props, labels in groups.items():
            server = stack.enter_context(torchserve(work / "store", labels, dict(props), work))
            targets.update({t.label: t for t in torchserve_targets(server, labels)})
        for label in references:
            app = reference_app(sources["sentiment_fast"], work, label)
            targets[label] = stack.enter_context(app)
        ordered = [targets[s] for s in args.servers]
        runs = measure(
            ordered, args.concurrency, args.rounds, args.seconds, args.warmup, texts, work
        )
        ceiling = {} if args.no_ceilings else ceilings(archives, variants, texts, work)
    table = medians(runs)
    return {
        "started": started.isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python -m benchmarks.bench", *sys.argv[1:]]),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        },
        "settings": {
            "seconds": args.seconds,
            "warmup": args.warmup,
            "rounds": args.rounds,
            "concurrency": args.concurrency,
            "body": BODY,
            "variants": {
                v.label: {"model": v.model, **v.model_config(), "ts": v.ts_props, "rev": v.rev}
                for v in chosen
            },
        },
        "runs": runs,
        "medians": {s: {str(c): m for c, m in by_c.items()} for s, by_c in table.items()},
        "ceilings": ceiling,
        "targets": targets_met(table, ceiling),
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--servers",
        type=lambda s: s.split(","),
        default=list(DEFAULT_SERVERS),
        help=f"comma-separated (default {','.join(DEFAULT_SERVERS)})",
    )
    parser.add_argument("-c", "--concurrency", type=_ints, default=list(DEFAULT_CONCURRENCY))
    parser.add_argument("--seconds", type=int, default=10, help="per measured point")
    parser.add_argument("--warmup", type=int, default=2, help="seconds before each point")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--variant",
        type=parse_variant,
        action="append",
        default=[],
        help="label=model[:key=value,...] (model-config, handler.*, ts.* keys)",
    )
    parser.add_argument("--no-ceilings", action="store_true", help="skip in-process ceilings")
    parser.add_argument("--artifacts", type=parse_artifacts, action="append", default=[],
                        metavar="MODEL=DIR", help="a trained dir (e.g. any checkpoint) to "
                        "measure instead of the model's own")  # fmt: skip
    parser.add_argument("--data-dir", help="NSMC directory (default: $NSMC_DIR or data/nsmc)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        report = run(args, dict(args.artifacts))
    except (BenchError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    text = write_report(report, args.out)
    print(f"\n{text}\nwrote results.json, bench.png and report.md to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
