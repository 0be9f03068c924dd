"""The accuracy-against-compute report reads every run's curve and its final figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts.registry import ROOT
from scripts.training.pretrain_report import main, write_report


def _run(root: Path, name: str, objective: str, accuracies: list[float], final: dict) -> Path:
    work = root / name / "work"
    work.mkdir(parents=True)
    points = [{"objective": objective, "encoder": "4 x 128", "step": 100 * (i + 1),
               "sequences": 6400 * (i + 1),
               "tokens": 150_000 * (i + 1), "minutes": 1.5 * (i + 1),
               "probe_validation_accuracy": accuracy}
              for i, accuracy in enumerate(accuracies)]  # fmt: skip
    (work / "pretrain_curve.jsonl").write_text("".join(json.dumps(p) + "\n" for p in points))
    if final:
        (root / name / "metadata.json").write_text(json.dumps({**final, "command": f"python -m x --teacher {ROOT}/build/t"}))
    return root / name


def test_report_has_every_point_and_the_finished_runs_figures(tmp_path: Path):
    electra = _run(tmp_path, "electra", "electra", [0.71, 0.75], {"test_accuracy": 0.889,
                   "validation_accuracy": 0.8801, "finetuned_validation_accuracy": 0.87})
    mlm = _run(tmp_path, "mlm", "mlm", [0.70], {})
    out = write_report([electra, mlm], "cmd", tmp_path / "pretraining.md")
    text = out.read_text()
    assert "| electra | 4 x 128 | electra | 200 | 12,800 | 300,000 | 3.0 | 75.00 % |" in text
    assert "| mlm | 4 x 128 | mlm | 100 |" in text
    # runnable from the checkout: the venv's Python, relative paths, the run dir as --out
    assert (f"| electra | 87.00 % | 88.01 % | 88.90 % | `.venv/bin/python -m x --teacher build/t "
            f"--out {electra.resolve()}` |") in text
    assert "| mlm | " not in text.split("| run | fine-tuned")[1]  # unfinished: no final row
    assert (tmp_path / "pretraining.png").stat().st_size > 0


def test_no_curve_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture):
    (tmp_path / "empty" / "work").mkdir(parents=True)
    assert main([str(tmp_path / "empty")]) == 2
    assert "no run has a probe curve" in capsys.readouterr().err


def test_runs_whose_directories_are_gone_stay_in_the_report(tmp_path: Path):
    """build/ does not survive a new machine: the committed record keeps what was measured."""
    old = _run(tmp_path / "a", "old", "mlm", [0.70, 0.72], {"test_accuracy": 0.88})
    long = _run(tmp_path / "a", "long", "mlm", [0.71], {})
    out = tmp_path / "pretraining.md"
    write_report([old, long], "cmd", out)
    long_again = _run(tmp_path / "b", "long", "mlm", [0.71, 0.74], {})  # a new machine
    text = write_report([long_again], "cmd", out).read_text()
    assert "| old | 4 x 128 | mlm | 200 |" in text and "| old |  |  | 88.00 % |" in text
    assert "| long | 4 x 128 | mlm | 200 | 12,800 | 300,000 | 3.0 | 74.00 % |" in text  # replaced
    assert text.count("| long | 4 x 128 | mlm | 100 |") == 1
    assert [run["name"] for run in json.loads(out.with_suffix(".json").read_text())] == ["old", "long"]


def test_a_continued_run_counts_on_from_the_run_it_continues(tmp_path: Path, monkeypatch):
    """Its line starts at the earlier run's point it went on from; the report says which."""
    from scripts.training import pretrain_report

    long = _run(tmp_path, "long", "mlm", [0.70, 0.72], {})
    more = _run(tmp_path, "more", "mlm", [], {})
    points = [{"objective": "mlm", "step": 300, "sequences": 19200, "tokens": 450_000,
               "minutes": 4.5, "probe_validation_accuracy": 0.74}]  # fmt: skip
    (more / "work" / "pretrain_curve.jsonl").write_text(json.dumps(points[0]) + "\n")
    origin = {"work_dir": str(long / "work"), "step": 200, "sequences": 12800, "tokens": 300_000,
              "minutes": 3.0}  # fmt: skip
    (more / "work" / "pretrain_origin.json").write_text(json.dumps(origin))
    drawn = {}
    real = pretrain_report.drawn_curve
    monkeypatch.setattr(pretrain_report, "drawn_curve",
                        lambda run, runs: drawn.setdefault(run["name"], real(run, runs)))
    text = write_report([long, more], "cmd", tmp_path / "pretraining.md").read_text()
    assert "more continues long's masked LM from step 200" in text
    assert [point["step"] for point in drawn["more"]] == [200, 300]
    assert [point["step"] for point in drawn["long"]] == [100, 200]


def test_points_written_before_sizes_were_recorded_take_the_saved_encoders(tmp_path: Path):
    """Curves from before 2026-12-07 do not name the size: the encoder the run saved does; a run
    still pre-training has saved none, and its cell stays empty rather than guessed."""
    old = _run(tmp_path, "old", "mlm", [0.70], {})
    running = _run(tmp_path, "running", "electra", [0.65], {})
    for run in (old, running):
        curve = run / "work" / "pretrain_curve.jsonl"
        point = json.loads(curve.read_text())
        del point["encoder"]
        curve.write_text(json.dumps(point) + "\n")
    (old / "work" / "mlm").mkdir()
    (old / "work" / "mlm" / "config.json").write_text(
        json.dumps({"num_hidden_layers": 6, "hidden_size": 256}))
    text = write_report([old, running], "cmd", tmp_path / "pretraining.md").read_text()
    assert "| old | 6 x 256 | mlm | 100 |" in text
    assert "| running |  | electra | 100 |" in text
