"""The benchmark instrument: wrk output parsing, variants, the report, and one short real run."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from benchmarks import bench
from benchmarks.loadgen import BenchError, parse_wrk
from benchmarks.report import medians, targets_met

# What `wrk --latency` prints (Debian's wrk 4.1), trimmed to the lines that are read.
WRK_OUTPUT = """Running 10s test @ http://127.0.0.1:8080/predictions/sentiment_fast
  2 threads and 32 connections
  Latency Distribution
     50%   15.98ms
     75%   18.20ms
     90%   22.10ms
     99%    1.02s
  18113 requests in 10.00s, 4.10MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:   1811.05
Transfer/sec:    419.93KB
"""


def test_parse_wrk_reads_rate_percentiles_in_ms_and_errors():
    parsed = parse_wrk(WRK_OUTPUT)
    assert parsed == {"rps": 1811.05, "p50_ms": 15.98, "p99_ms": 1020.0, "requests": 18113,
                      "errors": 4 + 3}  # fmt: skip
    micro = WRK_OUTPUT.replace("15.98ms", "850.00us").replace("Socket errors", "Ignored")
    assert parse_wrk(micro)["p50_ms"] == pytest.approx(0.85)
    with pytest.raises(BenchError, match="cannot read wrk's output"):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused")


def test_variant_overrides_land_in_the_right_config():
    variant = bench.parse_variant(
        "fast_x=sentiment_fast:maxBatchDelay=1,handler.max_texts=8,ts.number_of_netty_threads=4"
    )
    config = variant.model_config()
    assert config["maxBatchDelay"] == 1 and config["handler"]["max_texts"] == 8
    assert config["responseTimeout"] == 30  # untouched keys: archive/<model>/model-config.yaml
    assert variant.ts_props == {"number_of_netty_threads": "4"}
    with pytest.raises(argparse.ArgumentTypeError, match="label=model"):
        bench.parse_variant("x=no_such_model")


def test_a_variant_of_a_checkpoint_runtime_gets_an_archive_of_that_runtime():
    """handler.runtime of sentiment_bert builds a one-runtime archive; other models ignore it."""
    int8 = bench.parse_variant("b8=sentiment_bert:handler.runtime=onnx-int8")
    assert int8.runtime == "onnx-int8" and bench.parse_variant("b=sentiment_bert").runtime is None
    assert bench.parse_variant("f=sentiment_fast:handler.runtime=onnx").runtime is None


def test_artifacts_name_a_model_and_a_directory():
    args = bench.build_parser().parse_args(["--artifacts", "sentiment_bert=/tmp/base"])
    assert dict(args.artifacts) == {"sentiment_bert": Path("/tmp/base")}
    with pytest.raises(argparse.ArgumentTypeError, match="model=DIR"):
        bench.parse_artifacts("no_such_model=/tmp/base")


def test_report_medians_and_targets():
    """Issue 33's targets from the medians: p99 and ratios at c=32, the gap at c=1."""
    rows = [(r, s, c, rps, p50, p99)
            for r in range(3)
            for s, c, rps, p50, p99 in [("fast", 32, 3000 + 400 * (r == 1) - 2991 * (r == 2), 2.0,
                                         9.0),
                                        ("fast", 1, 300, 3.5, 5.0),
                                        ("reference_nodelay", 32, 1000 + 100 * r, 30.0, 90.0),
                                        ("reference_nodelay", 1, 400, 2.0, 4.0),
                                        ("bert", 32, 2000, 12.0, 20.0),
                                        ("cascade", 32, 2600, 10.0, 18.0)]]  # fmt: skip
    runs = [{"round": r, "server": s, "concurrency": c, "rps": rps, "p50_ms": p50,
             "p99_ms": p99, "errors": 0} for r, s, c, rps, p50, p99 in rows]  # fmt: skip
    table = medians(runs)
    assert table["fast"][32]["rps"] == 3000 and table["reference_nodelay"][32]["rps"] == 1100
    ceilings = {"fast": {"texts_per_s": 3500, "batch_size": 16},
                "bert": {"texts_per_s": 2000, "batch_size": 16}}  # fmt: skip
    checks = {c["target"].split(" >=")[0].split(" <=")[0].split(" within")[0]: c
              for c in targets_met(table, ceilings)}  # fmt: skip
    assert checks["fast p99"]["met"] and checks["fast p99"]["value"] == "9.0 ms"
    assert checks["fast req/s"]["value"] == "2.73x" and not checks["fast req/s"]["met"]
    assert checks["fast p50"]["value"] == "3.50 vs 2.00 ms (+1.50)"
    assert not checks["fast p50"]["met"]
    assert checks["fast served at c=32"]["met"] and checks["bert served at c=32"]["met"]
    assert "cascade served at c=32" not in checks  # no in-process figure for it in this run
    assert checks["cascade req/s"]["value"] == "1.30x" and checks["cascade req/s"]["met"]


def test_a_variant_may_pack_the_handlers_of_another_revision(tmp_path: Path):
    """`rev=` is no model-config key: the archive packs handlers/ as committed at that revision."""
    variant = bench.parse_variant("fast_before=sentiment_fast:rev=HEAD,maxBatchDelay=3")
    assert variant.rev == "HEAD" and "rev" not in variant.model_config()
    assert variant.model_config()["maxBatchDelay"] == 3
    exported = bench.handlers_at("HEAD", tmp_path)
    assert (exported / "sentiment_handler.py").is_file() and (exported / "contract.py").is_file()
