"""sentiment_client without TorchServe: exit codes for usage errors and an absent server, the
retry policy against a tiny local HTTP server that answers as a full TorchServe queue does (a
real one cannot be made to on demand), and where it looks for the key file.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from scripts.ops.server import Ports
from scripts.registry import ROOT
from sentiment_client import RequestRejected, SentimentClient, ServerUnavailable
from sentiment_client.keys import default_key_files
from tests.client_cli import sentiment


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


def test_default_key_files_include_the_checkouts_run_dir(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert default_key_files() == [tmp_path.resolve() / "run" / "key_file.json",
                                   ROOT / "run" / "key_file.json"]  # fmt: skip


class _Contract(BaseHTTPRequestHandler):
    """Answers {"text": [...]} as the handlers do: a blank text refuses the whole request, named
    by its place in it ("text"[i]); otherwise one answer per text."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        texts = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["text"]
        blank = [i for i, text in enumerate(texts) if not text.strip()]
        status, body = (200, [{"label": "positive"} for _ in texts]) if not blank else (
            400, {"code": 400, "type": "EmptyText",
                  "message": f'"text"[{blank[0]}] is empty or only whitespace/control characters'})
        self.send_response(status)
        self.end_headers()
        self.wfile.write(json.dumps(body).encode())

    def log_message(self, *args) -> None:
        pass


def test_a_refused_line_of_a_file_is_named_by_its_line_number(tmp_path: Path):
    """Sent alone after its batch was refused, a text is "text"[0] to TorchServe: the CLI
    says which line of the file it was."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Contract)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    reviews, keys = tmp_path / "reviews.txt", tmp_path / "key_file.json"
    reviews.write_text("좋다\n별로\n\n최고\n", encoding="utf-8")
    keys.write_text(json.dumps({"inference": {"key": "k"}}), encoding="utf-8")
    try:
        result = sentiment("predict", "--file", str(reviews), "--url",
                           f"http://127.0.0.1:{httpd.server_port}", "--key-file", str(keys))
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert result.returncode == 1, result.stderr
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert [a.get("label") for a in answers] == ["positive", "positive", None, "positive"]
    assert answers[2] == {"error": {
        "code": 400, "type": "EmptyText", "line": 3,
        "message": f"line 3 of {reviews} is empty or only whitespace/control characters"}}
    assert "1 of 4 texts refused by TorchServe (line 3)" in result.stderr


def test_predict_many_names_a_refused_text_by_its_place_in_the_texts(tmp_path: Path):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Contract)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        client = SentimentClient(f"http://127.0.0.1:{httpd.server_port}", key="k")
        answers = list(client.predict_many(["좋다", "별로", " ", "최고", ""], batch_size=2))
    finally:
        httpd.shutdown()
        httpd.server_close()
    errors = {i: a["error"] for i, a in enumerate(answers) if "error" in a}
    assert sorted(errors) == [2, 4]
    assert [errors[i]["index"] for i in (2, 4)] == [2, 4]
    assert errors[2]["message"].startswith('"text"[2] is empty')
    assert errors[4]["message"].startswith('"text"[4] is empty')
