"""Access control (keys, what may be registered, where TorchServe listens), artifact safety."""

from __future__ import annotations

import functools
import pickle
import shutil
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import joblib
import psutil
import pytest
import requests

from handlers.artifacts import TamperedArtifactError
from handlers.fast_handler import MODEL_FILE, SentimentFastHandler
from scripts.ops.server import TorchServe
from scripts.registry import MODELS
from tests.handler_context import make_context
from tests.waits import until, worker_runs

MODEL = "sentiment_fast"


@pytest.fixture(scope="module")
def server(registering_server: TorchServe) -> TorchServe:
    """This module registers archives: the TorchServe with the model API on, as `manage register`
    and `rollout` open it (tests/integration/conftest.py); the shared one keeps it off."""
    return registering_server


def _refused(response: requests.Response) -> None:
    """TorchServe 0.12 answers a missing or wrong key with 400 InvalidKeyException (not 401)."""
    assert response.status_code == 400, response.text
    assert response.json()["type"] == "InvalidKeyException"


BAD_KEYS = ["none", "wrong", "other API's key"]


def _headers(server: TorchServe, key: str, other_api: str) -> dict[str, str]:
    if key == "none":
        return {}
    return {"Authorization": "Bearer not-the-key"} if key == "wrong" else server.auth(other_api)


@pytest.mark.parametrize("key", BAD_KEYS)
def test_management_api_needs_its_key(server: TorchServe, key: str):
    headers = _headers(server, key, other_api="inference")
    management = server.url("management")
    _refused(requests.get(f"{management}/models", headers=headers, timeout=10))
    _refused(requests.get(f"{management}/models/{MODEL}", headers=headers, timeout=10))
    url = f"{management}/models?url={MODEL}.mar&model_name=copy"
    _refused(requests.post(url, headers=headers, timeout=10))
    url = f"{management}/models/{MODEL}?min_worker=0"
    _refused(requests.put(url, headers=headers, timeout=10))
    _refused(requests.delete(f"{management}/models/{MODEL}", headers=headers, timeout=10))
    assert set(server.model_status(MODEL)) == {"READY"}  # nothing was changed


@pytest.mark.parametrize("key", BAD_KEYS)
def test_inference_api_needs_its_key(server: TorchServe, key: str):
    headers = {**_headers(server, key, other_api="management"), "Content-Type": "text/plain"}
    url = server.url("inference", f"/predictions/{MODEL}")
    _refused(requests.post(url, data="좋다".encode(), headers=headers, timeout=10))
    _refused(requests.get(server.url("inference", "/ping"), headers=headers, timeout=10))


@pytest.fixture
def archive_server(model_store: Path, tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server offering a real archive: (its URL, the paths it was asked for)."""
    shutil.copy(model_store / f"{MODEL}.mar", tmp_path / "x.mar")
    asked: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            asked.append(self.path)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=tmp_path))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}/x.mar", asked
    finally:
        httpd.shutdown()
        httpd.server_close()


def _register(server: TorchServe, url: str, name: str) -> requests.Response:
    return requests.post(
        server.url("management", "/models"),
        params={"url": url, "model_name": name},
        headers=server.auth("management"),
        timeout=60,
    )


def test_remote_archive_url_is_refused(server: TorchServe, archive_server):
    url, asked = archive_server
    response = _register(server, url, "remote_copy")
    assert response.status_code == 404, response.text
    assert "does not match any allowed URL" in response.json()["message"]
    assert asked == [], "TorchServe fetched the remote archive"
    _assert_not_registered(server, "remote_copy")


def test_file_url_outside_the_model_store_is_refused(server: TorchServe, tmp_path: Path):
    outside = tmp_path / "elsewhere.mar"
    shutil.copy(server.model_store / f"{MODEL}.mar", outside)
    response = _register(server, f"file://{outside}", "elsewhere")
    assert response.status_code == 404, response.text
    assert "does not match any allowed URL" in response.json()["message"]
    assert not (server.model_store / "elsewhere.mar").exists()
    _assert_not_registered(server, "elsewhere")


def test_relative_path_out_of_the_store_is_refused(server: TorchServe):
    response = _register(server, f"../{server.model_store.name}/{MODEL}.mar", "traversal")
    assert response.status_code == 404, response.text
    assert "Relative path is not allowed" in response.json()["message"]


def _assert_not_registered(server: TorchServe, name: str) -> None:
    url = server.url("management", f"/models/{name}")
    assert requests.get(url, headers=server.auth("management"), timeout=10).status_code == 404


def test_every_listener_is_bound_to_localhost(server: TorchServe):
    frontend = psutil.Process(server.pid())
    listening = [c.laddr for c in frontend.net_connections("inet") if c.status == "LISTEN"]
    ports = server.ports
    expected = {ports.inference, ports.management, ports.metrics, ports.grpc_inference,
                ports.grpc_management}  # fmt: skip
    assert {address.port for address in listening} == expected
    assert all(address.ip in ("127.0.0.1", "::ffff:127.0.0.1") for address in listening), listening
    for worker in frontend.children(recursive=True):  # workers talk over unix sockets only
        assert not [c for c in worker.net_connections("inet") if c.status == "LISTEN"]


class _Payload:
    """A pickle that runs code when loaded: it would create `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def tampered_archive(original: Path, out: Path, marker: Path) -> Path:
    """A copy of `original` whose model.joblib is a pickle that would create `marker`."""
    with zipfile.ZipFile(original) as source, zipfile.ZipFile(out, "w") as copy:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == MODEL_FILE:
                data = pickle.dumps(_Payload(marker))
            copy.writestr(item, data)
    return out


def test_tampered_model_in_an_archive_is_never_unpickled(model_store: Path, tmp_path: Path):
    """Swap model.joblib inside the .mar for a code-running pickle: the handler refuses the
    archive on its SHA-256 before joblib ever loads it."""
    marker = tmp_path / "payload-ran"
    tampered = tampered_archive(model_store / f"{MODEL}.mar", tmp_path / "tampered.mar", marker)
    model_dir = tmp_path / "model_dir"  # what TorchServe unpacks the archive into
    with zipfile.ZipFile(tampered) as archive:
        archive.extractall(model_dir)
    context = make_context(MODEL, model_dir, MODELS[MODEL].config_file)
    with pytest.raises(TamperedArtifactError, match=f"{MODEL_FILE} .* refusing to load"):
        SentimentFastHandler().initialize(context)
    assert not marker.exists()
    joblib.load(model_dir / MODEL_FILE)  # the check above is what stood between it and this
    assert marker.exists()


def test_tampered_archive_registered_through_torchserve_never_serves(
    server: TorchServe, tmp_path: Path
):
    """The same archive placed in the model store and registered: TorchServe's own worker
    refuses it by name, no worker becomes READY, and the payload never runs."""
    marker = tmp_path / "payload-ran"
    name = "tampered_fast"
    archive = tampered_archive(server.model_store / f"{MODEL}.mar",
                               server.model_store / f"{name}.mar", marker)  # fmt: skip
    try:
        response = requests.post(
            server.url("management", "/models"),
            params={"url": archive.name, "model_name": name, "initial_workers": 1,
                    "synchronous": "true"},
            headers=server.auth("management"), timeout=120,
        )  # fmt: skip
        # wait for the worker's refusal itself (whether TorchServe starts it again, and when,
        # depends on its back-off: not this test's subject)
        until(lambda: [run for run in worker_runs(server, name, "TamperedArtifactError")
                       if run.failed], 180, "a worker refusing the archive")  # fmt: skip
        statuses = server.model_status(name) if response.status_code == 200 else []
        assert "READY" not in statuses, (response.status_code, response.text, statuses)
        assert not marker.exists(), "the pickle inside the tampered archive was loaded"
        log = (server.log_dir / "model_log.log").read_text(encoding="utf-8", errors="replace")
        assert "TamperedArtifactError" in log and f"{MODEL_FILE}" in log
    finally:
        requests.delete(server.url("management", f"/models/{name}"),
                        headers=server.auth("management"), timeout=60)  # fmt: skip
        archive.unlink(missing_ok=True)
