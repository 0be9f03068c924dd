"""sentiment_bert's handler and training pipeline, without the server."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from handlers.bert_handler import SentimentBertHandler
from scripts.registry import MODELS
from scripts.training import train_bert
from scripts.training.train_bert import (
    bert_teacher,
    predict_proba,
    stack_layers,
    train,
    widen_hidden,
)
from tests.cases import BAD_REQUESTS, GOOD_REQUESTS
from tests.checkpoints import TEXTS, save_checkpoint
from tests.conftest import committed_bert_checkpoint
from tests.handler_context import make_context, run_batch

CONFIG = MODELS["sentiment_bert"].config_file


def load(model_dir: Path) -> tuple[SentimentBertHandler, object]:
    context = make_context("sentiment_bert", model_dir, CONFIG)
    handler = SentimentBertHandler()
    handler.initialize(context)
    return handler, context


def test_random_checkpoint_serves_the_contract(random_bert_dir: Path):
    """Any save_pretrained directory loads through the Auto* classes and answers every request."""
    handler, context = load(random_bert_dir)
    requests = [(r, ct) for _, r, ct, _, _ in GOOD_REQUESTS] + [
        (r, ct) for _, r, ct, _ in BAD_REQUESTS
    ]
    results = run_batch(handler, context, requests)
    expected = [200] * len(GOOD_REQUESTS) + [400] * len(BAD_REQUESTS)
    assert [status for status, _, _ in results] == expected
    for (status, body, _), (_, _, _, is_list, count) in zip(results, GOOD_REQUESTS):
        answer = json.loads(body)
        answers = answer if is_list else [answer]
        assert len(answers) == count
        for item in answers:
            assert sum(item["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


def test_padding_does_not_change_answers(random_bert_dir: Path):
    """A short text batched with a long one gets the same probabilities as alone."""
    handler, _ = load(random_bert_dir)
    short, long = "재밌다", "정말 재밌다 " * 10
    together = handler.predict_proba([short, long])
    alone = handler.predict_proba([short])
    assert together[0] == pytest.approx(alone[0], abs=1e-5)


def test_init_fine_tunes_a_local_checkpoint(nsmc_dir: Path, random_bert_dir: Path, tmp_path: Path):
    """`--init <dir>` skips tokenizer training and MLM, and fine-tunes the given checkpoint."""
    metadata = train(nsmc_dir, tmp_path / "out", "--preset", "tiny", "--init", str(random_bert_dir),
                     "--distill-epochs", "0", "--order-seed", "1")  # fmt: skip
    assert metadata["init"] == str(random_bert_dir) and metadata["pretrain_texts"] == 0
    assert metadata["init_metadata"] == {"model": "random"}  # the starting point's manifest
    assert metadata["command"].endswith("--distill-epochs 0 --order-seed 1")
    assert metadata["transfer_texts"] == 0 and metadata["preset_settings"]["order_seed"] == 1
    handler, context = load(tmp_path / "out")
    [(status, _, _)] = run_batch(handler, context, [({"body": "재밌다"}, "text/plain")])
    assert status == 200


def test_order_seed_gives_a_run_its_own_batch_order():
    """Order seed 0 keeps the stages' historical seeds (1, 2, 3: recorded commands reproduce);
    any other value changes every stage's order, and no two stages or runs share one."""
    preset = train_bert.PRESETS["tiny"]
    assert [preset.stage_seed(stage) for stage in (1, 2, 3)] == [1, 2, 3]
    runs = [dataclasses.replace(preset, order_seed=k) for k in range(4)]
    seeds = [run.stage_seed(stage) for run in runs for stage in (1, 2, 3)]
    assert len(set(seeds)) == len(seeds)
    lengths = [i % 50 for i in range(4096)]
    first = [next(train_bert.batches(lengths, 16, run.stage_seed(2))) for run in runs]
    assert len({tuple(batch) for batch in first}) == len(runs)


def test_stack_layers_repeats_the_trained_layers(random_bert_dir: Path):
    """Layers 0..n-1 are copied on top, as separate parameters (training one leaves its twin)."""
    model = AutoModelForSequenceClassification.from_pretrained(random_bert_dir)
    [original] = model.bert.encoder.layer
    stacked = stack_layers(model, 3).bert.encoder.layer
    assert len(stacked) == 3 and model.config.num_hidden_layers == 3
    for layer in stacked:
        for mine, theirs in zip(layer.parameters(), original.parameters()):
            assert mine is not theirs and bool((mine == theirs).all())
    with pytest.raises(ValueError, match="already has 3 layers"):
        stack_layers(model, 3)


def test_widen_hidden_keeps_what_the_model_computes(random_bert_dir: Path):
    """Twice the width, the same logits (without noise); the noise makes the copies differ."""
    model = AutoModelForSequenceClassification.from_pretrained(random_bert_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(random_bert_dir)
    narrow = predict_proba(model, tokenizer, TEXTS, 64, "cpu")
    assert not np.allclose(narrow, 0.5, atol=1e-3)  # a random model's answers, not a constant
    wide = widen_hidden(model, noise=0).eval()
    config, old = wide.config, model.config
    assert (config.hidden_size, config.num_attention_heads, config.intermediate_size) == (
        2 * old.hidden_size, 2 * old.num_attention_heads, 2 * old.intermediate_size)
    np.testing.assert_allclose(predict_proba(wide, tokenizer, TEXTS, 64, "cpu"), narrow, atol=1e-5)
    query = widen_hidden(model).bert.encoder.layer[0].attention.self.query.weight
    half = old.hidden_size
    assert not torch.equal(query[:half, :half], query[half:, half:])


def test_bert_teacher_reads_labels_in_contract_order(tmp_path: Path):
    """A teacher checkpoint that names its labels (positive, negative) has its columns swapped."""
    reversed_dir = save_checkpoint("bert", tmp_path / "reversed", reverse_labels=True)
    tokenizer = AutoTokenizer.from_pretrained(reversed_dir)
    model = AutoModelForSequenceClassification.from_pretrained(reversed_dir).eval()
    raw = predict_proba(model, tokenizer, TEXTS, 64, "cpu")
    assert not np.allclose(raw, raw[:, ::-1], atol=1e-4)  # a swap is visible
    taught = bert_teacher(str(reversed_dir), 64, "cpu")(TEXTS)
    np.testing.assert_allclose(taught, raw[:, ::-1], atol=1e-6)


def test_stacked_checkpoint_is_distilled_and_recorded(
    nsmc_dir: Path, random_bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """`--stack-layers 2 --teacher <dir>,self --widen --augment 1` on a 1-layer checkpoint: the
    separate teacher and the model itself label the texts and their word-dropout copies, and a
    2-layer model of twice the width is distilled, saved, recorded and served."""
    init = ("--preset", "tiny", "--init", str(random_bert_dir))
    for flags in (["--stack-layers", "2"], ["--teacher", str(random_bert_dir)], ["--widen"],
                  ["--augment", "1"]):  # fmt: skip
        with pytest.raises(ValueError, match="needs distillation"):
            train(nsmc_dir, tmp_path / "none", *init, "--distill-epochs", "0", *flags)
    with pytest.raises(ValueError, match="number of copies"):
        train(nsmc_dir, tmp_path / "none", *init, "--augment", "-1")
    for members in ("self,self", "self,", ","):
        with pytest.raises(ValueError, match="distinct comma-separated members"):
            train(nsmc_dir, tmp_path / "none", *init, "--teacher", members)
    assert not (tmp_path / "none").exists()  # refused before any file is written
    teacher_dir = save_checkpoint("bert", tmp_path / "teacher")
    loaded: list[str] = []
    labelled: list[int] = []

    def counting_teacher(checkpoint: str, max_len: int, device) -> train_bert.teachers.Predict:
        loaded.append(checkpoint)
        predict = bert_teacher(checkpoint, max_len, device)
        return lambda texts: labelled.append(len(texts)) or predict(texts)

    members: list[int] = []
    ensemble_proba = train_bert.teachers.ensemble_proba

    def counting_ensemble(teachers, texts):
        members.append(len(teachers))
        return ensemble_proba(teachers, texts)

    monkeypatch.setattr(train_bert, "bert_teacher", counting_teacher)
    monkeypatch.setattr(train_bert.teachers, "ensemble_proba", counting_ensemble)
    flags = (*init, "--stack-layers", "2", "--teacher", f"{teacher_dir},self", "--widen",
             "--augment", "1")  # fmt: skip
    metadata = train(nsmc_dir, tmp_path / "out", *flags)
    assert sum(labelled) >= metadata["transfer_texts"] > 0  # transfer, validation, test sets
    assert loaded == [str(teacher_dir)]
    assert members == [4, 4, 4]  # char NB, NB-SVM, the teacher, the model itself; 3 sets
    assert metadata["teacher"] == f"{teacher_dir},self"
    assert metadata["teacher_metadata"] == {str(teacher_dir): None}  # it has no manifest
    assert metadata["command"].endswith(
        f"--stack-layers 2 --teacher {teacher_dir},self --widen --augment 1")
    assert metadata["augment_copies"] == 1 and "word-dropout copies" in metadata["description"]
    limit = train_bert.PRESETS["tiny"].max_pretrain_texts
    reviews = set(train_bert.read_unlabeled(nsmc_dir / "unlabeled.txt", limit))
    assert metadata["transfer_texts"] > len(reviews)  # the copies were added
    assert metadata["description"].startswith("BERT 2 layers / hidden 32")
    assert f"(BERT teachers: {teacher_dir}, itself)" in metadata["description"]
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert (config["num_hidden_layers"], config["hidden_size"]) == (2, 32)
    handler, context = load(tmp_path / "out")
    [(status, _, _)] = run_batch(handler, context, [({"body": "재밌다"}, "text/plain")])
    assert status == 200
    # a rerun resumes from <out>/work: the cached labels, so the teacher is not loaded again
    again = train(nsmc_dir, tmp_path / "out", *flags)
    assert loaded == [str(teacher_dir)] and again["test_accuracy"] == metadata["test_accuracy"]


def test_tiny_preset_pipeline_learns(bert_artifacts: Path):
    """Tokenizer -> MLM -> fine-tune -> distil on 4k rows: above chance, metadata complete."""
    metadata = json.loads((bert_artifacts / "metadata.json").read_text())
    assert metadata["preset"] == "tiny" and metadata["pretrain_texts"] > 0
    assert metadata["transfer_texts"] > 0 and metadata["teacher_test_accuracy"] > 0.65
    assert metadata["test_accuracy"] > 0.65  # ~0.74 measured over seeds; chance is 0.5
    # the validation split is held out of training, so its calibration fit is on unseen rows
    assert metadata["train_part"] == "fit"
    assert metadata["calibration"]["validation_seen_in_training"] is False
    assert set(metadata["artifact_sha256"]) >= {"model.safetensors", "tokenizer.json"}
    tokenizer = load(bert_artifacts)[0].tokenizer
    pieces = [piece.removeprefix("##") for piece in tokenizer.tokenize("재밌다")]
    assert "".join(pieces) == "재밌다"  # whole syllables: not decomposed into jamo, not [UNK]


SEED_SENTENCES = [
    ("음악이 주가 된, 최고의 음악영화", "positive"),
    ("발연기 도저히 못보겠다 진짜 이렇게 연기를 못할거라곤 상상도 못했네", "negative"),
    ("실화라서더욱아름답고찡하네요...많이울었어요벌써4년이란시간이흘렀네요", "positive"),
]


def test_committed_checkpoint_answers_seed_sentences():
    """The checkpoint `make serve` uses: hashes verify, the seed's sentences come out right."""
    handler, context = load(committed_bert_checkpoint())
    metadata = handler.metadata  # fitted on the 150k training rows outside the validation split
    assert metadata["train_rows"] + metadata["validation_rows"] == 150_000 and metadata["command"]
    requests = [({"body": {"text": text}}, "application/json") for text, _ in SEED_SENTENCES]
    results = run_batch(handler, context, requests)
    assert [json.loads(body)["label"] for _, body, _ in results] == [
        label for _, label in SEED_SENTENCES
    ]


def test_bert_settings_are_typed_and_checked():
    """model-config.yaml's handler section: strings become numbers, wrong values name the key."""
    from handlers.bert_settings import BertSettings

    settings = BertSettings.from_config({"torch_threads": "2", "max_length": "32", "runtime": "TORCH"})
    assert (settings.torch_threads, settings.max_length, settings.runtime) == (2, 32, "torch")
    assert BertSettings.from_config(None) == BertSettings()
    with pytest.raises(ValueError, match="explain_method"):
        BertSettings.from_config({"explain_method": "shap"})
    with pytest.raises(ValueError, match="fp16"):
        BertSettings.from_config({"fp16": "yes"})
    with pytest.raises(ValueError, match="pad_group"):
        BertSettings.from_config({"pad_group": "four"})
