"""docs/models/pretraining.md: accuracy against pre-training compute, per objective.

Each run's `work/pretrain_curve.jsonl` (scripts/training/pretraining.py) holds, every few
thousand steps, the sequences and tokens seen, the training minutes and a linear probe's
validation accuracy; a finished run's metadata.json adds its fine-tuned and distilled
validation (and final test) figures.  The report is generated, never edited by hand:

    .venv/bin/python -m scripts.training.pretrain_report build/bert_long

Run directories live in build/, which a new machine does not have, so every run the report has
seen is also kept in pretraining.json beside it (committed): a run named on the command line
replaces its record, and the recorded runs whose directories are gone stay in the report.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from scripts.registry import ROOT
from scripts.training.pretraining import ORIGIN_FILE, encoder_size, read_curve, saved_encoder

REPORT = ROOT / "docs" / "models" / "pretraining.md"
PLOT = REPORT.with_suffix(".png")
RECORD = REPORT.with_suffix(".json")
FINAL_KEYS = ("finetuned_validation_accuracy", "validation_accuracy", "test_accuracy")


def runnable(command: str | None, run_dir: Path) -> str | None:
    """The manifest's command as a reader runs it from the checkout: the venv's Python, paths
    relative to the checkout, and the run directory (`--out`, which the manifest leaves out
    since it lives there)."""
    if not command:
        return command
    command = command.replace(f"{ROOT}/", "")
    if command.startswith("python "):
        command = ".venv/bin/" + command
    if " --out " not in command:
        out = run_dir.resolve()
        command += f" --out {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}"
    return command


def saved_encoder_size(work_dir: Path) -> str:
    """The size of the encoder a run's pre-training saved ("" while it is still running): the
    curve points written before 2026-12-07 do not name it."""
    encoder = saved_encoder(work_dir)
    if encoder is None:
        return ""
    fields = json.loads((encoder / "config.json").read_text())
    return encoder_size(fields["num_hidden_layers"], fields["hidden_size"])


def read_run(run_dir: Path) -> dict:
    """A run's curve (each point with its encoder's size), the run it continues
    (`--pretrain-from`: its name and the step it went on from), and its manifest's figures
    when it has finished."""
    manifest_path = run_dir / "metadata.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    origin_path = run_dir / "work" / ORIGIN_FILE
    origin = json.loads(origin_path.read_text()) if origin_path.exists() else None
    curve = read_curve(run_dir / "work")
    if any("encoder" not in point for point in curve):
        size = saved_encoder_size(run_dir / "work")
        curve = [{"encoder": size, **point} for point in curve]
    return {"name": run_dir.name, "curve": curve,
            "continues": origin and {"run": Path(origin["work_dir"]).parent.name,
                                     "step": origin["step"]},
            "final": {key: manifest[key] for key in FINAL_KEYS if key in manifest},
            "command": runnable(manifest.get("command"), run_dir)}  # fmt: skip


def drawn_curve(run: dict, runs: Sequence[dict]) -> list[dict]:
    """A run's points, a continued run's starting at the point it went on from (so its line
    joins the earlier run's) when that run is in the report."""
    continues = run.get("continues")
    earlier = [point for other in runs if continues and other["name"] == continues["run"]
               for point in other["curve"] if point["step"] == continues["step"]]  # fmt: skip
    return earlier[:1] + run["curve"]


def plot_curves(runs: Sequence[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.4))
    for run in runs:
        if run["curve"]:
            curve = drawn_curve(run, runs)
            tokens = [point["tokens"] / 1e6 for point in curve]
            accuracy = [100 * point["probe_validation_accuracy"] for point in curve]
            last = run["curve"][-1]
            about = ", ".join(filter(None, (last.get("encoder"), last["objective"])))
            axis.plot(tokens, accuracy, "o-", label=f"{run['name']} ({about})")
    axis.set(xlabel="pre-training tokens (millions)", ylabel="linear probe, validation (%)",
             title="What pre-training gave the encoder, by compute")  # fmt: skip
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)


def markdown(runs: Sequence[dict], command: str) -> str:
    lines = [
        "# Pre-training: accuracy against compute",
        "",
        f"Generated by `{command}` on {datetime.now(timezone.utc).isoformat(timespec='seconds')}."
        " Do not edit by hand.",
        "",
        "Probe: logistic regression on the frozen encoder's mean-pooled states, fitted on 20,000 "
        "fit rows and scored on the validation split (10,033 reviews); it ranks what pre-training "
        "gave an encoder, the fine-tuned and distilled figures are the final word. Minutes are "
        "training time on the machine that ran it (2 CPU cores unless the command says a GPU); "
        "a token costs a larger encoder more, so compare sizes by minutes, not tokens. "
        f"Runs not named in the command come from [{RECORD.name}]({RECORD.name}), the record "
        "of every run this report has read.",
        "",
        "| run | encoder (layers x hidden) | objective | step | sequences | tokens | minutes | "
        "probe validation |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        for point in run["curve"]:
            lines.append(
                f"| {run['name']} | {point.get('encoder', '')} | {point['objective']} | "
                f"{point['step']:,} | "
                f"{point['sequences']:,} | {point['tokens']:,} | {point['minutes']} | "
                f"{100 * point['probe_validation_accuracy']:.2f} % |"
            )
    continued = [run for run in runs if run.get("continues")]
    if continued:
        lines.append("")
    for run in continued:
        lines.append(f"{run['name']} continues {run['continues']['run']}'s masked LM from step "
                     f"{run['continues']['step']:,} (`--pretrain-from`: its encoder, a fresh "
                     "warm-up and decay); its steps, tokens and minutes count on from there.")
    finished = [run for run in runs if run["final"]]
    if finished:
        lines += ["", "| run | fine-tuned, validation | distilled, validation | test | command |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for run in finished:
            final = run["final"]
            cells = [f"{100 * final[key]:.2f} %" if key in final else "" for key in FINAL_KEYS]
            lines.append(f"| {run['name']} | {' | '.join(cells)} | `{run['command']}` |")
    lines += ["", f"![accuracy against compute]({PLOT.name})", ""]
    return "\n".join(lines)


def merge_with_record(runs: Sequence[dict], record_path: Path) -> list[dict]:
    """The recorded runs, each replaced by the live run of the same name; new runs appended."""
    recorded = json.loads(record_path.read_text()) if record_path.exists() else []
    live = {run["name"]: run for run in runs}
    merged = [live.pop(run["name"], run) for run in recorded]
    return merged + list(live.values())


def write_report(run_dirs: Sequence[Path], command: str, out: Path = REPORT) -> Path:
    live = [run for run in map(read_run, run_dirs) if run["curve"]]
    if not live:
        raise ValueError("no run has a probe curve yet (work/pretrain_curve.jsonl)")
    record = out.with_suffix(RECORD.suffix)
    runs = merge_with_record(live, record)
    record.write_text(json.dumps(runs, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    out.write_text(markdown(runs, command), encoding="utf-8")
    plot_curves(runs, out.with_suffix(".png"))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="train_bert --out directories")
    args = parser.parse_args(argv)
    command = " ".join([".venv/bin/python -m scripts.training.pretrain_report",
                        *map(str, args.runs)])  # fmt: skip
    try:
        print(f"wrote {write_report(args.runs, command)}")
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
