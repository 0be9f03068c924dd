"""scripts.ops.server without TorchServe: stand-in processes play the frontend and the key
renewer, so the paths a real server rarely takes (already running, a frontend that ignores
the stop, a renewed key under a status call, what `up` builds) are checked in seconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
import requests

from scripts.ops import server as server_module
from scripts.ops.server import TorchServe, build_missing, status_line, up
from scripts.ops.ts_process import stop_process
from sentiment_client.keys import KEY_ERROR

# Sleeps until killed; TERM is ignored, as by a frontend that does not stop when asked.
STUBBORN = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ignoring TERM', flush=True); time.sleep(300)")  # fmt: skip


@pytest.fixture
def stubborn() -> Iterator[subprocess.Popen]:
    process = subprocess.Popen([sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE)
    assert process.stdout.readline() == b"ignoring TERM\n"  # a TERM before this would kill it
    yield process
    process.kill()
    process.wait()
    process.stdout.close()


@pytest.fixture
def running(tmp_path: Path, stubborn: subprocess.Popen) -> Iterator[TorchServe]:
    """An instance whose frontend and key renewer pid files name live processes."""
    renewer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    server = TorchServe(run_dir=tmp_path / "run", model_store=tmp_path / "store")
    server.tmp_dir.mkdir(parents=True)
    server.pid_file.write_text(str(stubborn.pid))
    server.renewer_pid_file.write_text(str(renewer.pid))
    yield server
    renewer.kill()
    renewer.wait()


def write_key_file(server: TorchServe, inference: str, expires: str = "2030-01-02T03:04:05Z"):
    entries = {api: {"key": f"{api}-{inference}", "expiration time": expires}
               for api in ("inference", "management")}  # fmt: skip
    entries["inference"]["key"] = inference
    entries["API"] = {"key": "api-key"}
    (server.run_dir / "key_file.json").write_text(json.dumps(entries), encoding="utf-8")


def test_a_process_that_ignores_the_stop_is_killed(stubborn: subprocess.Popen):
    assert stop_process(stubborn.pid, timeout=0.5) is True
    assert stubborn.poll() is not None


def test_a_process_that_stops_when_asked_is_not_killed():
    polite = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    assert stop_process(polite.pid, timeout=10) is False  # TERM was enough: no SIGKILL
    assert polite.wait(timeout=5) is not None


def test_stop_kills_a_frontend_that_outlives_torchserve_stop(
    running: TorchServe, stubborn: subprocess.Popen, monkeypatch: pytest.MonkeyPatch
):
    asked = []
    monkeypatch.setattr(TorchServe, "_ask_to_stop", lambda self: asked.append(self.run_dir))
    assert running.stop(timeout=0.5) is True
    assert asked == [running.run_dir] and stubborn.poll() is not None
    assert running.renewer_pid() is None and running.pid() is None


def test_up_when_already_running_builds_and_starts_nothing(
    running: TorchServe, stubborn: subprocess.Popen, monkeypatch, capsys
):
    def refuse(*args, **kwargs):
        raise AssertionError("up() built or started although TorchServe runs")

    monkeypatch.setattr(server_module, "build_missing", refuse)
    monkeypatch.setattr(TorchServe, "start", refuse)
    up(running)
    out = capsys.readouterr().out
    assert f"already running from {running.run_dir} (pid {stubborn.pid}" in out
    assert f"key renewer pid {running.renewer_pid()}" in out and "`make stop` first" in out


def test_status_line_of_a_running_server_names_both_processes_and_the_expiry(
    running: TorchServe, stubborn: subprocess.Popen
):
    write_key_file(running, "k1")
    line = status_line(running)
    assert line.startswith(f"TorchServe running from {running.run_dir} (pid {stubborn.pid}); ")
    assert f"key renewer pid {running.renewer_pid()}" in line
    assert "inference key expires 2030-01-02 03:04 UTC" in line
    assert "management key expires 2030-01-02 03:04 UTC" in line
    running.renewer_pid_file.unlink()
    assert "NO key renewer: the keys will expire" in status_line(running)


def test_build_missing_builds_only_absent_default_archives(tmp_path: Path, monkeypatch):
    """Present archives are kept, and a rolled-out default is never rebuilt as <model>.mar."""
    server = TorchServe(run_dir=tmp_path / "run", model_store=tmp_path / "store")
    server.model_store.mkdir()
    (server.model_store / "sentiment_fast.mar").touch()
    server.record_default("sentiment_bert", "sentiment_bert_v2.0.mar")
    built = []
    monkeypatch.setattr(server_module, "ensure_artifacts", lambda name, data: Path(f"/a/{name}"))
    monkeypatch.setattr(server_module, "build_archive", lambda spec, artifacts, store:
                        built.append((spec.name, artifacts, store)))  # fmt: skip
    assert build_missing(server, "data") == ["sentiment"]
    assert built == [("sentiment", Path("/a/sentiment"), server.model_store)]


def test_model_status_is_retried_with_a_renewed_key(tmp_path: Path, monkeypatch):
    """A renewal between reading the key file and the call: the status call is sent again
    with the new key, as every other call is, instead of reading as 'not registered'."""
    server = TorchServe(run_dir=tmp_path)
    write_key_file(server, "old")
    seen = []

    def fake_request(method: str, url: str, headers: dict, **kwargs) -> requests.Response:
        seen.append(headers["Authorization"])
        response = requests.Response()
        if headers["Authorization"] == "Bearer management-old":
            write_key_file(server, "new")  # the renewer wrote the file meanwhile
            response.status_code, response._content = 400, json.dumps(
                {"code": 400, "type": KEY_ERROR, "message": "Token Authorization failed"}
            ).encode()
        else:
            response.status_code = 200
            response._content = json.dumps([{"workers": [{"status": "READY"}]}]).encode()
        return response

    monkeypatch.setattr(requests, "request", fake_request)
    assert server.model_status("sentiment_fast") == ["READY"]
    assert seen == ["Bearer management-old", "Bearer management-new"]


def test_workers_import_handlers_from_their_archive_not_the_checkout(
    tmp_path: Path, monkeypatch
):
    """The checkout on the workers' PYTHONPATH made every archive run the working tree's
    handlers/ (a rollout to an archive with other handler code served the old code)."""
    monkeypatch.setenv("PYTHONPATH", f"{server_module.ROOT}{os.pathsep}/opt/extra")
    env = TorchServe(run_dir=tmp_path / "run", model_store=tmp_path / "store")._env()
    assert env["PYTHONPATH"] == "/opt/extra"
    monkeypatch.delenv("PYTHONPATH")
    env = TorchServe(run_dir=tmp_path / "run", model_store=tmp_path / "store")._env()
    assert "PYTHONPATH" not in env
