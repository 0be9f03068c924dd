"""scripts.training.teacher_choice: ranking candidate teacher ensembles on validation."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from scripts.training import teacher_choice
from scripts.training.train_bert import predict_proba
from tests.checkpoints import TEXTS


def two_class(positive: list[float]) -> np.ndarray:
    p = np.asarray(positive)
    return np.stack([1 - p, p], axis=1)


def test_members_that_err_apart_rank_above_each_alone():
    """Each member is wrong on one review, confidently right where the other errs: their
    geometric mean is right on all four, and ranks first."""
    labels = np.array([1, 1, 0, 0])
    probabilities = {"a": two_class([0.9, 0.4, 0.2, 0.3]), "b": two_class([0.45, 0.8, 0.3, 0.2])}
    ranked = teacher_choice.rank_ensembles(probabilities, labels)
    assert ranked == [(("a", "b"), 1.0), (("a",), 0.75), (("b",), 0.75)]


def test_a_runs_finetuned_state_is_scored_and_cached(
    random_bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A work dir (tokenizer/, the pre-trained encoder under its objective's name, finetune.pt)
    scores as the fine-tuned classifier would, and the answer is cached by the state's hash."""
    work = tmp_path / "run" / "work"
    shutil.copytree(random_bert_dir, work / "mlm")
    shutil.copytree(random_bert_dir, work / "tokenizer")
    finetuned = AutoModelForSequenceClassification.from_pretrained(random_bert_dir).eval()
    torch.nn.init.normal_(finetuned.classifier.weight, std=1.0)  # not the encoder dir's head
    torch.save({"model": finetuned.state_dict(), "step": 1}, work / "finetune.pt")
    monkeypatch.setattr(teacher_choice, "CACHE", tmp_path / "cache")
    tokenizer = AutoTokenizer.from_pretrained(random_bert_dir)
    expected = predict_proba(finetuned, tokenizer, TEXTS, 32, "cpu")
    scored = teacher_choice.finetuned_probabilities(work, TEXTS, max_len=32)
    np.testing.assert_allclose(scored, expected, atol=1e-6)
    assert len(list((tmp_path / "cache").glob("finetuned-validation-*.npy"))) == 1
    np.testing.assert_array_equal(teacher_choice.finetuned_probabilities(work, TEXTS, 32), scored)


def test_an_unknown_member_is_refused_by_name(
    nsmc_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
):
    assert teacher_choice.main([str(tmp_path), "--data-dir", str(nsmc_dir)]) == 2
    assert f"{tmp_path}: not 'fast'" in capsys.readouterr().err
