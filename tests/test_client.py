"""sentiment_client and the `sentiment` command against a real TorchServe (`server` fixture).

The command runs as users run it (`python -m sentiment_client`, a subprocess),
so exit codes and output files are what scripts would see.  The retry policy
is checked against a tiny local HTTP server that answers as TorchServe does
when its queue is full, since a real one cannot be made to do that on demand.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from scripts.nsmc import TEST_FILE
from scripts.ops.server import Ports, TorchServe
from sentiment_client import RequestRejected, SentimentClient, ServerUnavailable
from sentiment_client.keys import default_key_files

ROOT = Path(__file__).resolve().parent.parent


def sentiment(*args: str, server: TorchServe | None = None) -> subprocess.CompletedProcess:
    """Run the documented command; the key file is the one TorchServe wrote for this server."""
    options = []
    if server is not None:
        key_file = str(server.run_dir / "key_file.json")
        options = ["--url", server.url("inference"), "--key-file", key_file]
    command = [sys.executable, "-m", "sentiment_client", *args, *options]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


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
    assert "1 of 501 texts refused" in result.stderr
    answers = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(answers) == len(lines)
    assert answers[100] == {
        "error": {"code": 400, "type": "EmptyText", "message": answers[100]["error"]["message"]}
    }
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


def test_server_down_exits_3():
    url = f"http://127.0.0.1:{Ports.free().inference}"
    result = sentiment("predict", "좋다", "--url", url)
    assert result.returncode == 3 and result.stderr.startswith("error (sentiment_fast): cannot")


def test_usage_errors_exit_2(tmp_path: Path):
    assert sentiment("predict", "--file", str(tmp_path / "absent.txt")).returncode == 2
    assert sentiment("predict").returncode == 2
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    assert sentiment("predict", "--file", str(tmp_path / "latin1.txt")).returncode == 2


class _Script(BaseHTTPRequestHandler):
    """Answers POSTs from a script of (status, body) pairs and counts them."""

    script: list[tuple[int, dict]] = []
    seen = 0

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers["Content-Length"]))
        status, body = self.script[min(type(self).seen, len(self.script) - 1)]
        type(self).seen += 1
        self.send_response(status)
        self.end_headers()
        self.wfile.write(json.dumps(body).encode())

    def log_message(self, *args) -> None:
        pass


@pytest.mark.parametrize(
    "script,calls,outcome",
    [
        ([(507, {"code": 507, "type": "ServiceUnavailableException", "message": "queue full"}),
          (200, [{"label": "positive"}])], 2, "ok"),
        ([(503, {"code": 503, "type": "ServiceUnavailableException", "message": "busy"})], 3,
         ServerUnavailable),
        ([(400, {"code": 400, "type": "EmptyText", "message": "empty"})], 1, RequestRejected),
        ([(404, {"code": 404, "type": "ModelNotFoundException", "message": "no"})], 1,
         RequestRejected),
    ],
    ids=["507 retried", "503 gives up", "400 not retried", "404 not retried"],
)  # fmt: skip
def test_retries_only_what_is_safe(script, calls: int, outcome):
    _Script.script, _Script.seen = script, 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Script)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        client = SentimentClient(f"http://127.0.0.1:{httpd.server_port}", key="k", retries=2,
                                 backoff=0.01)  # fmt: skip
        if outcome == "ok":
            assert client.predict(["좋다"]) == [{"label": "positive"}]
        else:
            with pytest.raises(outcome):
                client.predict(["좋다"])
        assert _Script.seen == calls
    finally:
        httpd.shutdown()
        httpd.server_close()


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


def test_default_key_files_include_the_checkouts_run_dir(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert default_key_files() == [tmp_path.resolve() / "run" / "key_file.json",
                                   ROOT / "run" / "key_file.json"]  # fmt: skip


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
