"""scripts/training/evaluate.py: the choice that sets the served cascade, and the edit that
writes it into archive/sentiment/model-config.yaml.

`choose` runs on a small synthetic validation set whose best setting is known by
construction; the rewrite runs on a copy of the real file and on files it must refuse.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from handlers.calibration import Calibration
from handlers.cascade import BERT, FAST, Cascade
from scripts.training import evaluate
from scripts.training.evaluate import (
    CASCADE_CONFIG,
    MAX_BERT_SHARE,
    CascadeConfigError,
    Point,
    Scored,
    choose,
    configured_cascade,
    write_cascade_config,
)


def rows(p_positive: list[float]) -> np.ndarray:
    return np.array([[1 - p, p] for p in p_positive])


def validation_set(sure: int, unsure: int) -> dict[str, Scored]:
    """`sure` texts fast gets right at 0.95 (BERT right at 0.6), then `unsure` texts fast
    answers at 0.6, half of them wrongly, and BERT gets right at 0.9.

    So BERT helps only on the unsure texts, and only with a weight above
    logit(0.6) / (logit(0.6) + logit(0.9)) = 0.156 can it overrule fast there.
    """
    labels = np.arange(sure + unsure) % 2
    sign = np.where(labels == 1, 1.0, -1.0)
    fast_right = np.r_[np.full(sure, 0.45), np.tile([0.1, -0.1], unsure // 2)]
    bert_right = np.r_[np.full(sure, 0.1), np.full(unsure, 0.4)]
    fast, bert = 0.5 + sign * fast_right, 0.5 + sign * bert_right
    return {name: Scored(name, rows(list(p)), Calibration(), labels)
            for name, p in ((FAST, fast), (BERT, bert))}  # fmt: skip


def test_choose_sends_only_the_unsure_texts_with_a_weight_that_lets_bert_overrule():
    chosen, grid = choose(validation_set(sure=80, unsure=20))
    assert chosen.share == pytest.approx(0.2) and chosen.accuracy == pytest.approx(1.0)
    assert 0.6 < chosen.threshold <= 0.95  # above fast's unsure 0.6, not its sure 0.95
    assert chosen.bert_weight >= 0.2
    assert max(p.accuracy for p in grid if p.share == 0) == pytest.approx(0.9)


def test_choose_with_a_weight_too_small_to_matter_sends_nothing_to_bert():
    chosen, _ = choose(validation_set(sure=80, unsure=20), weights=[0.1])
    assert (chosen.share, chosen.bert_weight) == (0.0, 0.1)
    assert chosen.accuracy == pytest.approx(0.9)


def test_choose_never_sends_more_than_the_allowed_share():
    chosen, grid = choose(validation_set(sure=40, unsure=60))
    assert max(p.accuracy for p in grid) == pytest.approx(1.0)  # at 60 % to BERT: not allowed
    assert chosen.share <= MAX_BERT_SHARE
    assert chosen.accuracy == pytest.approx(0.7)


def point(threshold: float, bert_weight: float) -> Point:
    return Point(threshold, bert_weight, share=0.0, accuracy=0.0, ece=0.0)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A copy of the served cascade's model-config.yaml."""
    return Path(shutil.copy(CASCADE_CONFIG, tmp_path / "model-config.yaml"))


def test_rewrite_changes_the_two_settings_and_keeps_every_other_line(config: Path):
    before = config.read_text(encoding="utf-8").splitlines()
    write_cascade_config(point(0.61, 0.35), config)
    after = config.read_text(encoding="utf-8").splitlines()
    assert len(after) == len(before)
    changed = [(old, new) for old, new in zip(before, after) if old != new]
    assert [new for _, new in changed] == ["  threshold: 0.61", "  bert_weight: 0.35"]
    assert [old.split(":")[0] for old, _ in changed] == ["  threshold", "  bert_weight"]
    assert configured_cascade(config) == Cascade(0.61, 0.35)


def test_rewrite_keeps_a_comment_on_the_same_line(tmp_path: Path):
    path = tmp_path / "model-config.yaml"
    path.write_text("handler:\n  threshold: 0.7  # chosen on validation\n  bert_weight: 0.8\n")
    write_cascade_config(point(0.0, 1.0), path)
    expected = "handler:\n  threshold: 0  # chosen on validation\n  bert_weight: 1\n"
    assert path.read_text() == expected


UNPARSABLE = {
    "not YAML": "handler:\n  threshold: [0.7\n  bert_weight: 0.8\n",
    "no handler section": "minWorkers: 2\n",
    "a setting missing": "handler:\n  threshold: 0.7\n",
    "flow style": "handler: {threshold: 0.7, bert_weight: 0.8}\n",
    "the keys twice": "handler:\n  threshold: 0.7\n  bert_weight: 0.8\n"
                      "other:\n  threshold: 0.1\n  bert_weight: 0.2\n",
    "the lines in another section": "other:\n  threshold: 0.1\n  bert_weight: 0.2\n"
                                    "handler: {threshold: 0.7, bert_weight: 0.8}\n",
}  # fmt: skip


@pytest.mark.parametrize("text", UNPARSABLE.values(), ids=UNPARSABLE.keys())
def test_rewrite_refuses_a_file_it_cannot_parse_and_leaves_it_unchanged(tmp_path: Path, text):
    path = tmp_path / "model-config.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CascadeConfigError, match=f"{path}: .*left unchanged"):
        write_cascade_config(point(0.61, 0.35), path)
    assert path.read_text(encoding="utf-8") == text


def test_choose_command_refuses_before_scoring(tmp_path: Path, monkeypatch, capsys):
    """One line and exit 2, before minutes of scoring that could not be written anyway."""
    broken = tmp_path / "model-config.yaml"
    broken.write_text(UNPARSABLE["not YAML"], encoding="utf-8")
    monkeypatch.setattr(evaluate, "CASCADE_CONFIG", broken)

    def no_scoring(*args):
        raise AssertionError("scored before checking the file")

    monkeypatch.setattr(evaluate, "score_components", no_scoring)
    assert evaluate.main(["choose", "--data-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {broken}: not valid YAML")
