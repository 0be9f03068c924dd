"""sentiment_client and the `sentiment` command against a real TorchServe (`server` fixture).

The command runs as users run it (`python -m sentiment_client`, a subprocess), so exit codes
and output files are what scripts would see.  Without a server: tests/unit/test_client_offline.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.nsmc import TEST_FILE
from scripts.ops.server import TorchServe
from scripts.registry import ROOT
from sentiment_client import RequestRejected, SentimentClient
from tests.client_cli import sentiment


def test_library_predicts_and_explains(server: TorchServe):
    client = SentimentClient(server.url("inference"), run_dir=server.run_dir)
    [answer] = client.predict(["정말 재밌게 잘봤습니다!"], model="fast")
    assert answer["label"] == "positive"
    [why] = client.explain(["정말 재밌게 잘봤습니다!"], model="bert")
    assert why["tokens"] and why["method"] == "integrated gradients"
    with pytest.raises(RequestRejected) as rejected:
        client.predict([""], model="fast")
    assert rejected.value.status == 400 and rejected.value.error_type == "EmptyText"


def test_file_of_reviews_gives_one_line_per_line(server: TorchServe, nsmc_dir, tmp_path: Path):
    """500 test reviews plus one empty line: 501 lines back, in order; the empty one says why."""
    rows = (nsmc_dir / TEST_FILE).read_text(encoding="utf-8").splitlines()[1:501]
    reviews = [row.split("\t")[1] for row in rows]
    labels = [int(row.split("\t")[2]) for row in rows]
    lines = reviews[:100] + [""] + reviews[100:]
    (tmp_path / "reviews.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "preds.jsonl"
    result = sentiment("predict", "--file", str(tmp_path / "reviews.txt"), "--model", "fast",
                       "--out", str(out), "--batch-size", "32", server=server)  # fmt: skip
    assert result.returncode == 1, result.stderr  # some texts refused
    assert "1 of 501 texts refused by TorchServe (line 101)" in result.stderr
    answers = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(answers) == len(lines)
    message = (f"line 101 of {tmp_path / 'reviews.txt'} is empty or only whitespace/control "
               "characters")  # fmt: skip
    assert answers[100] == {"error": {"code": 400, "type": "EmptyText", "message": message,
                                      "line": 101}}  # fmt: skip
    predicted = [a["label"] == "positive" for a in answers[:100] + answers[101:]]
    accuracy = sum(p == bool(y) for p, y in zip(predicted, labels)) / len(labels)
    assert accuracy > 0.75  # the 20k-row test model; order kept, or this would be ~0.5


def test_single_texts_and_explain(server: TorchServe):
    result = sentiment(
        "predict", "정말 재밌게 잘봤습니다!", "최악", "--model", "bert", server=server
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2
    result = sentiment("explain", "정말 재밌게 잘봤습니다!", server=server)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("positive (") and "재밌" in result.stdout
    result = sentiment("explain", " ", "--model", "bert", server=server)
    assert result.returncode == 1 and "EmptyText" in result.stderr


def test_unknown_model_exits_4(server: TorchServe):
    result = sentiment("predict", "좋다", "--model", "nope", server=server)
    assert result.returncode == 4
    assert result.stderr.count("\n") == 1 and "404" in result.stderr and "nope" in result.stderr


def test_wrong_key_exits_4(server: TorchServe, tmp_path: Path):
    key_file = tmp_path / "key_file.json"
    key_file.write_text(json.dumps({"inference": {"key": "wrong"}}))
    result = sentiment("predict", "좋다", "--url", server.url("inference"), "--key-file",
                       str(key_file))  # fmt: skip
    assert result.returncode == 4 and "InvalidKeyException" in result.stderr


def test_missing_key_file_exits_2_and_says_where_it_looked(server: TorchServe, tmp_path: Path):
    """Run from outside the checkout, as an installed `sentiment` would be."""
    missing = tmp_path / "elsewhere" / "key_file.json"
    command = [sys.executable, "-m", "sentiment_client", "predict", "좋다",
               "--url", server.url("inference"), "--key-file", str(missing)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert str(missing) in result.stderr and "--key-file" in result.stderr
    assert "SENTIMENT_KEY_FILE" in result.stderr and result.stderr.count("\n") == 1


def test_output_into_a_closed_pipe_ends_quietly(server: TorchServe, tmp_path: Path):
    """`sentiment predict --file big.txt | head -2`: two lines, no BrokenPipeError traceback."""
    (tmp_path / "big.txt").write_text("정말 재밌게 잘봤습니다!\n" * 3000, encoding="utf-8")
    sentiment_cmd = " ".join([sys.executable, "-m", "sentiment_client", "predict", "-q",
                              "--file", str(tmp_path / "big.txt"), "--url", server.url("inference"),
                              "--key-file", str(server.run_dir / "key_file.json")])  # fmt: skip
    result = subprocess.run(["sh", "-c", f"{sentiment_cmd} | head -2"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert len(result.stdout.splitlines()) == 2
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr


@pytest.mark.parametrize("model", ["bert", "sentiment_bert"])
def test_short_and_registered_model_names_both_work(server: TorchServe, model: str):
    result = sentiment("predict", "정말 재밌게 잘봤습니다!", "--model", model, server=server)
    assert result.returncode == 0, result.stderr
