"""Pre-training objectives, the probe curve, and the training loop's mid-stage resume."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, BertForSequenceClassification

from scripts.training import loop
from scripts.training.pretraining import (
    CURVE_FILE,
    Electra,
    Probe,
    pretrain,
    read_curve,
    sample,
)
from scripts.training import train_bert
from scripts.training.train_bert import PRESETS, train_tokenizer

TEXTS = ["정말 재밌게 잘봤습니다", "최악의 영화 ㅋㅋ", "그냥 그래요", "배우들 연기가 좋다", "시간 아까움",
         "다시 보고 싶다", "돈 아깝다 진짜", "감동적인 영화"]  # fmt: skip
LABELS = [1, 0, 0, 1, 0, 1, 0, 1]


class Stop(Exception):
    """Stands for a run killed in the middle of a stage."""


def _train_linear(work_dir: Path, total: int, stop_at: int | None = None) -> torch.Tensor:
    """A few steps of a tiny model whose batches and noise come from the loop's iterators
    and random state, as the real stages' do."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    data = torch.randn(64, 4)
    order = loop.batches([1] * 64, 8, seed=3)

    def step_loss(_: int) -> torch.Tensor:
        rows = data[next(order)]
        return ((model(rows + 0.1 * torch.randn_like(rows))) ** 2).mean()

    def after_step(step: int, _seconds: float) -> None:
        if step == stop_at:
            raise Stop

    loop.run_steps(model, step_loss, total, 0.1, work_dir, "stage", after_step, order)
    return model.weight.detach().clone()


def test_a_stage_stopped_midway_resumes_where_it_stopped(tmp_path: Path, monkeypatch):
    """Stopped after 5 of 12 steps and run again, a stage ends with the very weights of a run
    that was never stopped: the batches already seen are skipped (not repeated from the
    first), and optimizer, schedule and random state continue."""
    monkeypatch.setattr(loop, "SAVE_EVERY_S", 0)  # a resumable state after every step
    for run in "ab":
        (tmp_path / run).mkdir()
    uninterrupted = _train_linear(tmp_path / "a", 12)
    with pytest.raises(Stop):
        _train_linear(tmp_path / "b", 12, stop_at=5)
    assert torch.load(tmp_path / "b" / "stage.pt", weights_only=False)["step"] == 5
    resumed = _train_linear(tmp_path / "b", 12)
    assert torch.equal(resumed, uninterrupted)
    minutes = loop.stage_minutes(tmp_path / "b", ("stage", "absent"))
    assert set(minutes) == {"stage"} and minutes["stage"] >= 0


@pytest.fixture(name="tokenizer", scope="module")
def fixture_tokenizer(tmp_path_factory: pytest.TempPathFactory):
    return train_tokenizer(TEXTS * 10, 300, tmp_path_factory.mktemp("tokenizer"))


def test_electra_pretraining_leaves_a_bert_encoder_and_its_curve(tokenizer, tmp_path: Path):
    """The discriminator is what is kept: a BERT the fine-tuning stage loads as a
    BertForSequenceClassification; the probe records a curve point every `probe_every` steps."""
    preset = dataclasses.replace(PRESETS["tiny"], objective="electra", pretrain_steps=4,
                                 probe_every=2, pretrain_batch=4)  # fmt: skip
    probe = Probe((TEXTS, LABELS), (TEXTS, LABELS))
    encoder_dir = pretrain(tokenizer, TEXTS * 4, preset, tmp_path, torch.device("cpu"), probe)
    assert encoder_dir == tmp_path / "electra"
    model = AutoModelForSequenceClassification.from_pretrained(encoder_dir, num_labels=2)
    assert isinstance(model, BertForSequenceClassification)
    curve = read_curve(tmp_path)
    assert [point["step"] for point in curve] == [2, 4]
    assert all(point["objective"] == "electra" and point["tokens"] > 0 for point in curve)
    assert all(point["encoder"] == f"{preset.layers} x {preset.hidden}" for point in curve)
    assert all(0.0 <= point["probe_validation_accuracy"] <= 1.0 for point in curve)
    trained = model.bert.embeddings.word_embeddings.weight
    fresh = AutoModelForSequenceClassification.from_config(model.config)
    assert not torch.equal(trained, fresh.bert.embeddings.word_embeddings.weight)


def test_electra_generator_shares_the_discriminators_token_embeddings(tokenizer):
    preset = dataclasses.replace(PRESETS["tiny"], objective="electra")
    electra = Electra(tokenizer, preset)
    shared = electra.discriminator.embeddings.word_embeddings.weight
    assert electra.generator.electra.embeddings.word_embeddings.weight is shared
    assert electra.generator.generator_lm_head.weight is shared
    assert electra.generator.config.hidden_size < preset.hidden or preset.hidden <= 16


def test_unknown_objective_is_refused(tokenizer, tmp_path: Path):
    preset = dataclasses.replace(PRESETS["tiny"], objective="xlnet")
    with pytest.raises(ValueError, match="objective 'xlnet'"):
        pretrain(tokenizer, TEXTS, preset, tmp_path, torch.device("cpu"))


def test_curve_keeps_one_point_per_step(tmp_path: Path):
    """A resumed run may record a step twice; the last record is the one kept."""
    lines = [{"step": 4, "probe_validation_accuracy": 0.6}, {"step": 2, "x": 1},
             {"step": 4, "probe_validation_accuracy": 0.7}]  # fmt: skip
    (tmp_path / CURVE_FILE).write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert [p["step"] for p in read_curve(tmp_path)] == [2, 4]
    assert read_curve(tmp_path)[1]["probe_validation_accuracy"] == 0.7
    assert read_curve(tmp_path / "missing") == []


def test_generator_samples_follow_its_probabilities():
    """Inverse-CDF sampling draws each token as often as softmax(logits) says."""
    torch.manual_seed(0)
    logits = torch.log(torch.tensor([[0.1, 0.6, 0.3, 0.0]])).repeat(20_000, 1)
    drawn = torch.bincount(sample(logits), minlength=4).float() / 20_000
    assert torch.allclose(drawn, torch.tensor([0.1, 0.6, 0.3, 0.0]), atol=0.02)


def test_a_light_state_resumes_with_the_rate_ramped_back(tmp_path: Path, monkeypatch):
    """A state without Adam's moments (device_piece's light state, which carries a run to
    another machine) resumes at its step, the rate ramped from near zero back onto the
    schedule over REWARM_STEPS steps; a full state resumes on the schedule at once."""
    monkeypatch.setattr(loop, "SAVE_EVERY_S", 0)
    monkeypatch.setattr(loop, "REWARM_STEPS", 4)
    rates: list[float] = []

    class RecordingAdamW(torch.optim.AdamW):
        def step(self, closure=None):
            rates.append(self.param_groups[0]["lr"])
            return super().step(closure)

    monkeypatch.setattr(loop.torch.optim, "AdamW", RecordingAdamW)
    total, stop_at = 24, 10

    def scheduled(step: int) -> float:  # warm-up of one step, then linear decay
        return 0.1 * min(step + 1, (total - step) / (total - 1))

    for light in (False, True):
        work_dir = tmp_path / str(light)
        work_dir.mkdir()
        with pytest.raises(Stop):
            _train_linear(work_dir, total, stop_at=stop_at)
        state_path = work_dir / "stage.pt"
        state = torch.load(state_path, weights_only=False)
        if light:
            state.pop("optimizer")
            torch.save(state, state_path)
        rates.clear()
        _train_linear(work_dir, total)
        ramp = [min(1.0, (s - stop_at + 1) / 4) if light else 1.0 for s in range(stop_at, total)]
        expected = [scheduled(s) * r for s, r in zip(range(stop_at, total), ramp)]
        assert rates == pytest.approx(expected), light
    assert rates[0] == pytest.approx(scheduled(stop_at) / 4)


def test_a_time_budget_stops_a_stage_with_its_state_saved(tmp_path: Path, monkeypatch):
    """--stop-after-minutes: the stage saves and stops (StageStopped), the rerun finishes it
    with the weights of a run never stopped."""
    monkeypatch.setattr(loop, "_deadline", None)
    for run in "ab":
        (tmp_path / run).mkdir()
    uninterrupted = _train_linear(tmp_path / "a", 12)
    loop.stop_after(0)
    with pytest.raises(loop.StageStopped, match="stage stopped at step 1/12"):
        _train_linear(tmp_path / "b", 12)
    loop.stop_after(None)
    assert torch.load(tmp_path / "b" / "stage.pt", weights_only=False)["step"] == 1
    assert torch.equal(_train_linear(tmp_path / "b", 12), uninterrupted)


def test_train_bert_exits_3_when_its_budget_runs_out(nsmc_dir: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setattr(loop, "_deadline", None)
    argv = ["--data-dir", str(nsmc_dir), "--preset", "tiny", "--out", str(tmp_path / "run"),
            "--stop-after-minutes", "0"]  # fmt: skip
    try:
        assert train_bert.main(argv) == train_bert.STOPPED_EXIT
    finally:
        loop.stop_after(None)
    assert torch.load(tmp_path / "run" / "work" / "pretrain.pt", weights_only=False)["step"] == 1
    assert not (tmp_path / "run" / "metadata.json").exists()
