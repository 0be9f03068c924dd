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
