"""The committed BERT checkpoint is replaced only by a verified, small enough one that is better
on validation by a paired test; the test accuracy never decides."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from handlers.artifacts import BERT_FILES, METADATA_FILE, TamperedArtifactError, write_metadata
from scripts.packaging import promote_checkpoint
from scripts.packaging.promote_checkpoint import (
    NotBetterError,
    TooLargeError,
    main,
    paired_comparison,
    promote,
)

ROWS = 1000


def checkpoint(directory: Path, accuracy: float, payload: bytes = b"weights") -> Path:
    """A directory shaped like train_bert's output (file contents do not matter here)."""
    directory.mkdir(parents=True)
    for name in BERT_FILES:
        (directory / name).write_bytes(payload + name.encode())
    metadata = {"model": "sentiment_bert", "test_accuracy": accuracy, "command": f"run {accuracy}"}
    write_metadata(directory, metadata, BERT_FILES)
    return directory


def answers(wrong: int, flipped: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Right/wrong on ROWS reviews: the first `wrong` wrong, and rows [a, b) flipped."""
    right = np.arange(ROWS) >= wrong
    right[slice(*flipped)] = ~right[slice(*flipped)]
    return right


@pytest.fixture
def validation(monkeypatch: pytest.MonkeyPatch) -> dict[Path, np.ndarray]:
    """Validation answers by checkpoint directory, in place of scoring with the handler."""
    by_directory: dict[Path, np.ndarray] = {}

    def right(artifacts: Path, data_dir: Path) -> np.ndarray:
        return by_directory[artifacts]

    monkeypatch.setattr(promote_checkpoint, "validation_right", right)
    return by_directory


# --------------------------------------------------------------------------- paired test


def test_paired_comparison_counts_only_the_discordant_reviews():
    old = answers(150)  # 85.0 %
    new = answers(140, flipped=(500, 502))  # right on 140..149, wrong on 500, 501: b 10, c 2
    paired = paired_comparison(new, old)
    assert (paired.rows, paired.right_only_new, paired.right_only_old) == (ROWS, 10, 2)
    assert (paired.accuracy_new, paired.accuracy_old) == (0.858, 0.85)
    assert paired.p_value == pytest.approx(0.0385742, abs=1e-6)  # 2 * P(X <= 2), X ~ B(12, 1/2)
    assert paired.better(0.05) and not paired.better(0.01)


def test_a_gain_that_could_be_chance_is_not_better():
    paired = paired_comparison(answers(144), answers(150))  # b 6, c 0: 2 / 2**6
    assert paired.p_value == pytest.approx(2 / 64)
    better_not_significant = paired_comparison(answers(140, (500, 504)), answers(150))
    assert (better_not_significant.right_only_new, better_not_significant.right_only_old) == (10, 4)
    assert better_not_significant.p_value == pytest.approx(0.1795654, abs=1e-6)
    assert not better_not_significant.better(0.05)
    assert better_not_significant.better(1.0)  # --alpha 1: any validation gain


def test_ties_are_never_better():
    same = paired_comparison(answers(150), answers(150))
    assert (same.right_only_new, same.right_only_old, same.p_value) == (0, 0, 1.0)
    even = paired_comparison(answers(145, (500, 505)), answers(150))  # b 5, c 5
    assert (even.right_only_new, even.right_only_old, even.p_value) == (5, 5, 1.0)
    assert not same.better(1.0) and not even.better(1.0)
    with pytest.raises(ValueError, match="same reviews"):
        paired_comparison(answers(1), answers(1)[:-1])


# --------------------------------------------------------------------------- promote


def test_better_on_validation_replaces_though_worse_on_test(tmp_path: Path, validation):
    target = checkpoint(tmp_path / "committed", 0.880)
    (target / "leftover.bin").write_bytes(b"from an older layout")
    source = checkpoint(tmp_path / "new", 0.868, b"better")
    validation[source], validation[target] = answers(130), answers(150)
    metadata = promote(source, target, tmp_path)
    assert metadata["test_accuracy"] == 0.868  # test accuracy decided nothing
    assert metadata["replaced"] == {"command": "run 0.88", "test_accuracy": 0.880}
    assert metadata["promotion"] == {
        "decided_on": "validation", "rows": ROWS, "validation_accuracy_new": 0.87,
        "validation_accuracy_old": 0.85, "right_only_new": 20, "right_only_old": 0,
        "p_value": pytest.approx(2 / 2**20), "alpha": 0.05, "forced": False,
    }  # fmt: skip
    assert sorted(p.name for p in target.iterdir()) == sorted([*BERT_FILES, METADATA_FILE])
    assert (target / "config.json").read_bytes() == b"betterconfig.json"
    saved = json.loads((target / METADATA_FILE).read_text())
    assert saved["promotion"]["right_only_new"] == 20
    assert saved["artifact_sha256"] == json.loads((source / METADATA_FILE).read_text())[
        "artifact_sha256"
    ]


def test_better_on_test_but_not_on_validation_is_refused(tmp_path: Path, validation, capsys):
    target = checkpoint(tmp_path / "committed", 0.868)
    source = checkpoint(tmp_path / "new", 0.900, b"other")
    validation[source], validation[target] = answers(140, (500, 504)), answers(150)  # b 10, c 4
    message = r"0\.8560 against the committed 0\.8500.* b = 10.* c = 4.* p = 0\.1796"
    with pytest.raises(NotBetterError, match=message):
        promote(source, target, tmp_path)
    assert (target / "config.json").read_bytes() == b"weightsconfig.json"
    assert main([str(source), "--target", str(target), "--data-dir", str(tmp_path)]) == 1
    assert "keeping the committed one" in capsys.readouterr().err
    assert main([str(source), "--target", str(target), "--data-dir", str(tmp_path),
                 "--alpha", "1"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "b = 10, c = 4" in out and "final figure: test accuracy 0.9000" in out
    assert json.loads((target / METADATA_FILE).read_text())["promotion"]["alpha"] == 1.0


def test_force_overrides_and_says_so(tmp_path: Path, validation, capsys):
    target = checkpoint(tmp_path / "committed", 0.868)
    source = checkpoint(tmp_path / "old", 0.860, b"restored")
    validation[source], validation[target] = answers(150), answers(150)
    with pytest.raises(NotBetterError, match="b = 0.* c = 0.* p = 1"):
        promote(source, target, tmp_path)
    metadata = promote(source, target, tmp_path, force=True)
    assert metadata["promotion"]["forced"] is True
    assert "--force: replacing although not better" in capsys.readouterr().out
    assert (target / "config.json").read_bytes() == b"restoredconfig.json"


def test_first_checkpoint_needs_no_comparison(tmp_path: Path, validation):
    source = checkpoint(tmp_path / "new", 0.868)
    metadata = promote(source, tmp_path / "empty", tmp_path)  # `validation` holds no answers
    assert metadata["promotion"] == {"decided_on": "no committed checkpoint"}
    assert "replaced" not in metadata


def test_tampered_or_oversized_candidate_is_refused(tmp_path: Path, monkeypatch, validation):
    target = checkpoint(tmp_path / "committed", 0.868)
    source = checkpoint(tmp_path / "new", 0.9)
    (source / "model.safetensors").write_bytes(b"changed after training")
    with pytest.raises(TamperedArtifactError, match="model.safetensors"):
        promote(source, target, tmp_path)
    big = checkpoint(tmp_path / "big", 0.9, b"x" * 1000)
    monkeypatch.setattr(promote_checkpoint, "MAX_BYTES", 1000)
    with pytest.raises(TooLargeError, match="MiB"):
        promote(big, target, tmp_path)  # refused before any scoring: `validation` is empty
    assert json.loads((target / METADATA_FILE).read_text())["test_accuracy"] == 0.868


def test_alpha_outside_its_range_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["somewhere", "--alpha", "0"])
    assert "alpha must be in (0, 1]" in capsys.readouterr().err
