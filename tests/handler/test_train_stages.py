"""train_bert's stages one at a time, on made-up reviews (tests/synthetic_nsmc.py): what each
leaves in the run's state and in `<out>/work/`, the command recorded from argparse, and a run
stopped in the middle of each stage ending with the weights of a run never stopped."""

from __future__ import annotations

import dataclasses
import json
import shlex
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from scripts.nsmc import read_labelled
from scripts.training import loop, pretraining, teachers, train_bert
from scripts.training.train_bert import (
    NOT_RECORDED,
    build_parser,
    recorded_command,
)
from tests.synthetic_nsmc import write_nsmc

PRESET = "stages-test"
# metadata.json's keys, in order, as train() wrote them before it was split into stages
MANIFEST_KEYS = [
    "model", "description", "labels", "test_accuracy", "finetuned_test_accuracy",
    "finetuned_validation_accuracy", "teacher_validation_accuracy", "teacher_test_accuracy",
    "validation_accuracy", "preset", "preset_settings", "init", "init_metadata", "teacher",
    "teacher_metadata", "seed", "command", "max_length", "train_rows", "train_part",
    "validation_rows", "test_rows", "pretrain_texts", "pretrain_from", "pretrain_curve",
    "stage_minutes",
    "transfer_texts", "augment_copies", "train_file_sha256", "test_file_sha256",
    "training_seconds", "device", "versions", "created_at", "calibration", "artifact_sha256",
]  # fmt: skip


@pytest.fixture(name="data", scope="module")
def fixture_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_nsmc(tmp_path_factory.mktemp("synthetic_nsmc"), train_rows=300, test_rows=80,
                      unlabeled_rows=200)  # fmt: skip


@pytest.fixture(autouse=True)
def small_preset(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tiny preset cut to a few steps a stage: seconds a run."""
    preset = dataclasses.replace(train_bert.PRESETS["tiny"], pretrain_steps=6, probe_every=3,
                                 finetune_epochs=1, distill_batch=32)  # fmt: skip
    monkeypatch.setitem(train_bert.PRESETS, PRESET, preset)
    monkeypatch.setattr(loop, "SAVE_EVERY_S", 0)  # a resumable state after every step
    monkeypatch.setattr(loop, "_deadline", None)


def parsed(*argv: str):
    return build_parser().parse_args(list(argv))


@pytest.mark.parametrize("argv", [
    [],
    ["--preset", "tiny", "--seed", "42", "--teacher", "/x/teacher_0", "--out", "build/e"],
    ["--pres=tiny", "--init", "a dir", "--distill-epochs", "0", "--finetune-epochs", "0.5",
     "--data-dir", "d", "--stop-after-minutes", "5", "--order-seed", "0", "--threads", "1"],
    ["--objective", "electra", "--stack-layers", "4", "--widen", "--augment", "2", "--seed", "7"],
    ["--ngram-teachers", "nbsvm", "--init", "ckpt", "--finetune-epochs", "0"],
    ["--pretrain-from", "build/a run/work", "--pretrain-steps", "24000", "--pretrain-lr", "2.5e-4"],
])  # fmt: skip
def test_recorded_command_is_what_argparse_parsed(argv: list[str]):
    """Parsed again, the recorded command gives the same options, less where the run reads and
    writes and how long this sitting lasts; preset and seed are named even at their defaults."""
    args = parsed(*argv)
    words = shlex.split(recorded_command(args))
    assert words[:3] == ["python", "-m", "scripts.training.train_bert"]
    assert "--preset" in words and "--seed" in words
    assert not {"--data-dir", "--out", "--stop-after-minutes", "--threads"} & set(words)
    again = vars(parsed(*words[3:]))
    expected = vars(args)
    for dest in NOT_RECORDED:
        again.pop(dest), expected.pop(dest)
    assert again == expected


def test_recorded_command_reads_as_before():
    """The form the manifests of earlier runs have (a run resumed by this code records the same)."""
    args = parsed("--preset", "cpu-4x128-electra", "--seed", "42", "--teacher", "/b/teacher_0",
                  "--out", "/b/bert_electra")  # fmt: skip
    assert recorded_command(args) == (
        "python -m scripts.training.train_bert --preset cpu-4x128-electra --seed 42 "
        "--teacher /b/teacher_0")


def test_threads_sets_torch_threads_before_the_stages_run(monkeypatch: pytest.MonkeyPatch):
    seen = []
    monkeypatch.setattr(train_bert, "run_stages", lambda args: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert train_bert.main(["--threads", "1", "--preset", PRESET]) == 0
        assert seen == [1]
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("value", ["nb-svm", "", "nbsvm,bert"])
def test_unknown_ngram_teachers_are_refused_when_parsed(value: str, capsys):
    """Not hours later at the teacher stage."""
    with pytest.raises(SystemExit) as exit_info:
        parsed("--ngram-teachers", value)
    assert exit_info.value.code == 2 and "char-nb, nbsvm" in capsys.readouterr().err


def test_ngram_teachers_fits_only_the_members_named(data: Path):
    texts, labels = read_labelled(data / "ratings_train.txt", part="fit")
    [nbsvm] = teachers.fit_ngram_teachers(texts, labels, ["nbsvm"])
    both = teachers.fit_ngram_teachers(texts, labels)
    assert len(both) == 2
    assert nbsvm(texts[:5]).tolist() == both[1](texts[:5]).tolist()  # the same NB-SVM fit


def test_each_stage_leaves_its_state(data: Path, tmp_path: Path):
    out = tmp_path / "run"
    argv = ("--data-dir", str(data), "--out", str(out), "--preset", PRESET, "--augment", "1")
    run = train_bert.prepare(parsed(*argv))
    assert run.work_dir.is_dir() and run.distilling and run.model is None
    assert not set(run.train_set[0]) & set(run.validation_set[0]) and run.validation_set[0]
    assert len(run.unlabeled) == 200
    assert run.command.endswith(f"--preset {PRESET} --seed 42 --augment 1")

    train_bert.build_encoder(run)
    assert (run.work_dir / "tokenizer" / "tokenizer.json").exists()
    assert torch.load(run.work_dir / "pretrain.pt", weights_only=False)["step"] == 6
    assert [point["step"] for point in pretraining.read_curve(run.work_dir)] == [3, 6]
    assert run.pretrain_texts == 200 + len(run.train_set[0])

    train_bert.fine_tune(run)
    assert (run.work_dir / "finetune.pt").exists()
    assert run.test_probabilities.shape == (len(run.test_set[0]), 2)

    train_bert.label_transfer(run)
    assert (run.work_dir / "teacher.npz").exists()
    assert len(run.transfer) > 200  # the reviews and their word-dropout copies
    assert run.targets.shape == (len(run.transfer), 2)
    assert set(run.scores) == {"finetuned_test_accuracy", "finetuned_validation_accuracy",
                               "teacher_validation_accuracy", "teacher_test_accuracy"}
    cached = train_bert.teacher_probabilities({"self": None}, run.train_set, run.transfer,
                                              run.test_set[0], run.work_dir)  # fmt: skip
    assert cached[0].tolist() == run.targets.tolist()  # resumed: read back, nothing loaded
    with pytest.raises(train_bert.TeacherCacheError, match=r"\['char-nb', 'nbsvm', 'self'\]"):
        train_bert.teacher_probabilities({"build/other": None}, run.train_set, run.transfer,
                                          run.test_set[0], run.work_dir)  # fmt: skip

    before = run.model
    train_bert.grow(run)  # neither --stack-layers nor --widen: the same model
    assert run.model is before

    train_bert.distil(run)
    assert (run.work_dir / "distill.pt").exists()
    assert (run.work_dir / "distill_validation.jsonl").read_text().strip()

    test_accuracy = train_bert.evaluate(run)
    assert 0 <= test_accuracy <= 1 and "validation_accuracy" in run.scores

    train_bert.save(run)
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    metadata = train_bert.write_manifest(run, test_accuracy)
    assert list(json.loads((out / "metadata.json").read_text())) == MANIFEST_KEYS
    assert set(metadata) == set(MANIFEST_KEYS)
    assert metadata["command"] == run.command and metadata["augment_copies"] == 1
    assert set(metadata["stage_minutes"]) == {"pretrain", "finetune", "distill"}


def stopping_in(stage: str, at: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Spend the time budget at step `at` of `stage`: the loop saves and raises StageStopped,
    as `--stop-after-minutes` does."""
    real = loop.run_steps

    def run_steps(model, step_loss, total, lr, work_dir, desc, after_step=None, order=None):
        def hook(step: int, seconds: float) -> None:
            if after_step is not None:
                after_step(step, seconds)
            if desc == stage and step + 1 == at:
                monkeypatch.setattr(loop, "_deadline", 0.0)

        real(model, step_loss, total, lr, work_dir, desc, hook, order)

    monkeypatch.setattr(train_bert, "run_steps", run_steps)
    monkeypatch.setattr(pretraining, "run_steps", run_steps)


def test_a_run_stopped_in_each_stage_ends_as_one_never_stopped(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Stopped in pre-training, fine-tuning and distillation (exit 3 each time) and run again,
    the command writes the weights and figures of a run never stopped."""
    argv = ["--data-dir", str(data), "--preset", PRESET, "--objective", "electra"]
    assert train_bert.main([*argv, "--out", str(tmp_path / "whole")]) == 0
    stopped = [*argv, "--out", str(tmp_path / "stopped")]
    for stage, at in (("pretrain", 3), ("finetune", 4), ("distill", 5)):
        with monkeypatch.context() as patch:
            stopping_in(stage, at, patch)
            assert train_bert.main(stopped) == train_bert.STOPPED_EXIT
        state = torch.load(tmp_path / "stopped" / "work" / f"{stage}.pt", weights_only=False)
        assert state["step"] == at
    assert not (tmp_path / "stopped" / "metadata.json").exists()
    assert train_bert.main(stopped) == 0
    runs = ("whole", "stopped")
    whole, resumed = (load_file(tmp_path / run / "model.safetensors") for run in runs)
    assert whole.keys() == resumed.keys()
    assert all(torch.equal(whole[key], resumed[key]) for key in whole)
    figures = [json.loads((tmp_path / run / "metadata.json").read_text()) for run in runs]
    for key in ("test_accuracy", "validation_accuracy", "teacher_test_accuracy", "command"):
        assert figures[0][key] == figures[1][key]


def test_pretraining_continues_from_an_earlier_runs_encoder(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """`--pretrain-from`: the earlier run's tokenizer and masked-LM encoder (at rate 0 the
    weights come out as they went in), its batch stream skipped to where it stopped, and the
    curve counted on from its last point."""
    first = train_bert.prepare(parsed("--data-dir", str(data), "--out", str(tmp_path / "first"),
                                      "--preset", PRESET))  # fmt: skip
    train_bert.build_encoder(first)
    earlier = pretraining.read_curve(first.work_dir)[-1]
    skipped = []
    real_skip = pretraining.skip
    monkeypatch.setattr(pretraining, "skip", lambda order, n: skipped.append(n) or real_skip(order, n))
    runs = {}
    for lr in ("0", "0.002"):
        argv = ["--data-dir", str(data), "--out", str(tmp_path / f"lr{lr}"), "--preset", PRESET,
                "--pretrain-from", str(first.work_dir), "--pretrain-steps", "4", "--pretrain-lr", lr]
        run = runs[lr] = train_bert.prepare(parsed(*argv))
        assert run.preset.pretrain_steps == 4 and f"--pretrain-from {first.work_dir}" in run.command
        train_bert.build_encoder(run)
    assert skipped == [earlier["step"]] * 2
    tokenizer = (first.work_dir / "tokenizer" / "tokenizer.json").read_bytes()
    weights = {name: load_file(run.work_dir / "mlm" / "model.safetensors") for name, run in
               [("first", first), *runs.items()]}  # fmt: skip
    for name, run in runs.items():
        assert (run.work_dir / "tokenizer" / "tokenizer.json").read_bytes() == tokenizer
        curve = pretraining.read_curve(run.work_dir)
        assert [point["step"] for point in curve] == [earlier["step"] + 3, earlier["step"] + 4]
        assert curve[-1]["sequences"] == earlier["sequences"] + 4 * run.preset.pretrain_batch
        assert curve[0]["tokens"] > earlier["tokens"] and curve[0]["minutes"] >= earlier["minutes"]
    same = [torch.equal(weights["first"][key], weights[lr][key]) for lr in runs for key in
            weights["first"]]  # fmt: skip
    half = len(same) // 2
    assert all(same[:half]) and not all(same[half:])
    assert "continued from" in train_bert.description(runs["0.002"])


@pytest.mark.parametrize(("extra", "message"), [
    (["--init", "some/checkpoint"], "--init skips"),
    (["--objective", "electra"], "the preset asks electra"),
])  # fmt: skip
def test_pretrain_from_is_refused_before_any_file_is_written(
    data: Path, tmp_path: Path, extra: list[str], message: str
):
    first = train_bert.prepare(parsed("--data-dir", str(data), "--out", str(tmp_path / "first"),
                                      "--preset", PRESET))  # fmt: skip
    train_bert.build_encoder(first)
    out = tmp_path / "second"
    argv = ["--data-dir", str(data), "--out", str(out), "--preset", PRESET,
            "--pretrain-from", str(first.work_dir), *extra]  # fmt: skip
    with pytest.raises(ValueError, match=message):
        train_bert.prepare(parsed(*argv))
    assert not out.exists()


def test_a_continued_run_resumes_without_the_run_it_continues(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Stopped mid-pre-training and resumed on a machine where the earlier run's directory did
    not survive (only the new run's work dir, e.g. unpacked from carry/), a continued run ends
    with the weights and curve of one never stopped: it recorded its origin when it started."""
    first = train_bert.prepare(parsed("--data-dir", str(data), "--out", str(tmp_path / "first"),
                                      "--preset", PRESET))  # fmt: skip
    train_bert.build_encoder(first)
    argv = ["--data-dir", str(data), "--preset", PRESET, "--pretrain-from", str(first.work_dir),
            "--pretrain-steps", "4", "--distill-epochs", "0"]  # fmt: skip
    assert train_bert.main([*argv, "--out", str(tmp_path / "whole")]) == 0
    stopped = [*argv, "--out", str(tmp_path / "stopped")]
    with monkeypatch.context() as patch:
        stopping_in("pretrain", 2, patch)
        assert train_bert.main(stopped) == train_bert.STOPPED_EXIT
    shutil.move(first.out_dir, tmp_path / "gone")
    assert train_bert.main(stopped) == 0
    runs = ("whole", "stopped")
    whole, resumed = (load_file(tmp_path / run / "model.safetensors") for run in runs)
    assert all(torch.equal(whole[key], resumed[key]) for key in whole)
    curves = [pretraining.read_curve(tmp_path / run / "work") for run in runs]
    assert [p["step"] for p in curves[1]] == [p["step"] for p in curves[0]] == [9, 10]
    figures = [json.loads((tmp_path / run / "metadata.json").read_text()) for run in runs]
    assert figures[0]["pretrain_from"] == figures[1]["pretrain_from"] == str(first.work_dir)


def test_pretrain_from_names_what_the_directory_lacks(tmp_path: Path):
    (tmp_path / "tokenizer").mkdir()
    (tmp_path / "tokenizer" / "tokenizer.json").write_text("{}")
    with pytest.raises(ValueError, match="lacks mlm/config.json"):
        pretraining.Origin.read(tmp_path)
