"""The benchmark's report: medians over rounds, the issue's targets, a Markdown table, a plot.

Pure functions of the runs benchmarks/bench.py measured, so they are tested without a server.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any, Mapping, Sequence

REFERENCE = "reference"
REFERENCE_NODELAY = "reference_nodelay"
REFERENCES = (REFERENCE, REFERENCE_NODELAY)
Table = Mapping[str, Mapping[int, Mapping[str, float]]]


def medians(runs: Sequence[dict]) -> dict[str, dict[int, dict[str, float]]]:
    """server -> concurrency -> median of every numeric field over rounds."""
    grouped: dict[tuple[str, int], list[dict]] = {}
    for run in runs:
        grouped.setdefault((run["server"], run["concurrency"]), []).append(run)
    result: dict[str, dict[int, dict[str, float]]] = {}
    for (server, concurrency), group in grouped.items():
        keys = [k for k in group[0] if k not in ("round", "server", "concurrency")]
        result.setdefault(server, {})[concurrency] = {
            k: statistics.median(r[k] for r in group if k in r) for k in keys
        }
    return result


def _check(target: str, value: str, met: bool) -> dict:
    return {"target": target, "value": value, "met": met}


# Issue 33's targets (ratios within one run, 2 cores)
P99_MS_AT_32 = 15.0  # fast p99 at c=32
SERVED_SHARE = 0.8  # served req/s at c=32 / in-process texts/s at the archive's batch size
FAST_OVER_NODELAY = 4.0  # fast req/s / reference_nodelay req/s at c=32
C1_GAP_MS = 1.0  # fast p50 - reference_nodelay p50 at c=1
CASCADE_OVER_BERT = 1.2  # cascade req/s / bert req/s at c=32


def _served_share(label: str, served: Mapping[str, float], ceiling: Mapping[str, float]) -> dict:
    """Served req/s at c=32 against the archive's handler called in-process, batched."""
    share, inprocess = served["rps"] / ceiling["texts_per_s"], ceiling["texts_per_s"]
    value = f"{100 * share:.0f} % ({served['rps']:,.0f} / {inprocess:,.0f} texts/s)"
    return _check(f"{label} served at c=32 >= {100 * SERVED_SHARE:.0f} % of in-process "
                  f"batch {ceiling['batch_size']}", value, share >= SERVED_SHARE)  # fmt: skip


def _fast_checks(fast32: Mapping | None, fast1: Mapping | None, ref32: Mapping | None,
                 ref1: Mapping | None) -> list[dict]:  # fmt: skip
    """sentiment_fast's own targets: p99 at c=32, against the fixed reference app at c=32 / 1."""
    checks = []
    if fast32:
        p99 = fast32["p99_ms"]
        checks.append(_check(f"fast p99 <= {P99_MS_AT_32:g} ms at c=32", f"{p99:.1f} ms",
                             p99 <= P99_MS_AT_32))  # fmt: skip
    if fast32 and ref32:
        ratio = fast32["rps"] / ref32["rps"]
        checks.append(_check(f"fast req/s >= {FAST_OVER_NODELAY:g}x {REFERENCE_NODELAY} at c=32",
                             f"{ratio:.2f}x", ratio >= FAST_OVER_NODELAY))  # fmt: skip
    if fast1 and ref1:
        gap = fast1["p50_ms"] - ref1["p50_ms"]
        value = f"{fast1['p50_ms']:.2f} vs {ref1['p50_ms']:.2f} ms ({gap:+.2f})"
        checks.append(_check(f"fast p50 within {C1_GAP_MS:g} ms of {REFERENCE_NODELAY} at c=1",
                             value, gap <= C1_GAP_MS))  # fmt: skip
    return checks


def targets_met(table: Table, ceiling: Mapping[str, Mapping[str, float]]) -> list[dict]:
    """Issue 33's targets, as ratios of this run's medians (only those this run measured)."""

    def point(server: str, concurrency: int) -> Mapping[str, float] | None:
        return table.get(server, {}).get(concurrency)

    checks = _fast_checks(point("fast", 32), point("fast", 1), point(REFERENCE_NODELAY, 32),
                          point(REFERENCE_NODELAY, 1))  # fmt: skip
    for label in ("fast", "bert", "cascade"):
        if point(label, 32) and label in ceiling:
            checks.append(_served_share(label, point(label, 32), ceiling[label]))
    cascade32, bert32 = point("cascade", 32), point("bert", 32)
    if cascade32 and bert32:
        ratio = cascade32["rps"] / bert32["rps"]
        checks.append(_check(f"cascade req/s >= {CASCADE_OVER_BERT:g}x bert at c=32",
                             f"{ratio:.2f}x", ratio >= CASCADE_OVER_BERT))  # fmt: skip
    return checks


def markdown(
    table: Table,
    ceiling: Mapping[str, Mapping[str, float]],
    checks: Sequence[dict],
    header: str,
) -> str:
    lines = [
        header,
        "",
        "| server | c | req/s | p50 ms | p99 ms | errors | CPU ms/req (frontend / workers / wrk) |",
        "|---|---|---|---|---|---|---|",
    ]
    for server, by_c in table.items():
        for concurrency, m in sorted(by_c.items()):
            cpu = " / ".join(
                f"{m.get(f'cpu_ms_per_req_{g}', float('nan')):.2f}"
                for g in ("frontend", "workers", "wrk")
            )
            lines.append(
                f"| {server} | {concurrency} | {m['rps']:,.0f} | {m['p50_ms']:.2f} | "
                f"{m['p99_ms']:.1f} | {m['errors']:.0f} | {cpu} |"
            )
    if ceiling:
        lines += [
            "",
            "| in-process (no server) | runtime | texts/s at batch size | texts/s at 1 |",
            "|---|---|---|---|",
        ]
        for label, c in ceiling.items():
            lines.append(
                f"| {label} | {c['runtime']} | {c['texts_per_s']:,.0f} "
                f"(batch {c['batch_size']}) | {c['texts_per_s_batch1']:,.0f} |"
            )
    if checks:
        lines += ["", "| target | this run | met |", "|---|---|---|"]
        lines += [
            f"| {c['target']} | {c['value']} | {'yes' if c['met'] else 'NO'} |" for c in checks
        ]
    return "\n".join(lines) + "\n"


def plot(table: Table, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for server, by_c in table.items():
        xs = sorted(by_c)
        left.plot(xs, [by_c[c]["rps"] for c in xs], marker="o", label=server)
        right.plot(xs, [by_c[c]["p99_ms"] for c in xs], marker="o", label=server)
    for axis, ylabel in ((left, "requests/s (median)"), (right, "p99 latency, ms (median)")):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("concurrent connections")
        axis.set_ylabel(ylabel)
        axis.grid(True, alpha=0.3)
    right.set_yscale("log")
    left.legend()
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_report(report: Mapping[str, Any], out: Path) -> str:
    """results.json, bench.png and report.md in `out`; returns the Markdown."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    table = {s: {int(c): m for c, m in by_c.items()} for s, by_c in report["medians"].items()}
    settings, machine = report["settings"], report["machine"]
    header = (
        f"Medians of {settings['rounds']} round(s) x {settings['seconds']} s per point, "
        f"{report['started']}, {machine['cpus']} CPUs, load average before "
        f"{machine['loadavg_before'][0]:.2f}"
    )
    plot(table, out / "bench.png", header)
    text = markdown(table, report["ceilings"], report["targets"], header)
    (out / "report.md").write_text(text, encoding="utf-8")
    return text
