"""One regression test per known TorchServe vulnerability class, against a real TorchServe.

TorchServe is archived (0.12.0 is the last release, no security patches): what closes each
class is a setting of this project, and each test fails if that setting is removed
(docs/security-and-reliability.md, "TorchServe is archived"):

| class | closed by | tests |
|---|---|---|
| ShellTorch (CVE-2023-43654): register from anywhere | `enable_model_api=false` | test_registration_is_off_by_default |
| CVE-2024-35198 and other `allowed_urls` bypasses (`%2e%2e%2f`) | `allowed_urls=(?!)` | test_no_url_passes_the_allow_list |
| paths TorchServe never checks (issue 31) | model API off; `manage register` sends names only | test_torchserve_itself_registers_any_directory, test_manage_register_sends_no_path |
| the workflow API (registers models with the model API off) | `workflow_store=no-workflow-store` | test_workflow_api_registers_nothing |
| 0.11.1 defaults: a key on every API | token authorization on | test_every_api_needs_its_key |
| reachable from other hosts | every listener on 127.0.0.1 | test_no_port_answers_on_another_address |
| tampered archive | the handler's SHA-256 check | test_security.py::test_tampered_archive_* |

`server` is the shared instance in the project's default configuration (model API off);
`registering_server` has the model API on, as `manage register` and `rollout` open it.
"""

from __future__ import annotations

import functools
import json
import shutil
import socket
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import psutil
import pytest
import requests

from scripts.ops.manage import Management, ManagementError
from scripts.ops.server import TorchServe
from tests.conftest import missing

MODEL = "sentiment_fast"


@pytest.fixture(scope="module")
def outside(model_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory beside the model store with a real archive and a model directory in it."""
    where = tmp_path_factory.mktemp("outside")
    shutil.copy(model_store / f"{MODEL}.mar", where / "x.mar")
    (where / "model_dir").mkdir()
    (where / "model_dir" / "handler.py").write_text("def handle(data, context):\n    return []\n")
    return where


@pytest.fixture(scope="module")
def http_archive(outside: Path) -> Iterator[tuple[int, list[str]]]:
    """A local HTTP server offering x.mar: (its port, the paths it was asked for)."""
    asked: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            asked.append(self.path)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=outside))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield httpd.server_port, asked
    finally:
        httpd.shutdown()
        httpd.server_close()


def url_spellings(store: Path, outside: Path, port: int) -> list[str]:
    """Registration URLs that name an archive outside the store, with a scheme."""
    up = "%2e%2e%2f" * len(store.resolve().parts[1:])  # from the store up to /, encoded
    encoded = up + "%2f".join(outside.resolve().parts[1:]) + "%2fx.mar"
    return [
        f"file://{outside}/x.mar", f"FILE://{outside}/x.mar", f"file://localhost{outside}/x.mar",
        f"file://{store}/{encoded}", f"file://{store}/{encoded.replace('%2e', '%2E').replace('%2f', '%2F')}",
        f"file://{store}/../{outside.name}/x.mar", f"file://{store}/..%2f{outside.name}%2fx.mar",
        f"http://127.0.0.1:{port}/x.mar", f"https://127.0.0.1:{port}/x.mar",
        f"http://localhost:{port}/x.mar", f"http://[::1]:{port}/x.mar",
        f"http://127.0.0.1:{port}/x.mar?.mar", f"fil://{outside}/x.mar",
    ]  # fmt: skip


def path_spellings(store: Path, outside: Path) -> list[str]:
    """What TorchServe takes as a path, never matched against allowed_urls (issue 31)."""
    return [str(outside / "model_dir"), ".", "./", "x/", str(store), f"{store}/", "%2e",
            f"../{outside.name}/x.mar", f"file:{outside}/x.mar", f"s3://bucket{outside}/x.mar",
            f"ftp://127.0.0.1{outside}/x.mar", f"//127.0.0.1{outside}/x.mar",
            f"jar:file:{outside}/x.mar!/", "\\\\127.0.0.1\\x.mar"]  # fmt: skip


def post(server: TorchServe, path: str, **params: object) -> requests.Response:
    return server.request("management", "POST", path, params=params, timeout=120)


def registered(server: TorchServe) -> set[str]:
    models = server.request("management", "GET", "/models", timeout=10).json()["models"]
    return {model["modelName"] for model in models}


def unregister(server: TorchServe, name: str) -> None:
    server.request("management", "DELETE", f"/models/{name}", timeout=60)


# --------------------------------------------------------------------------- model API off


def test_registration_is_off_by_default(server: TorchServe, outside: Path, http_archive):
    """ShellTorch's first step: with the project's configuration no spelling registers
    anything, an archive of the store included: TorchServe answers 405 (`enable_model_api`)."""
    port, asked = http_archive
    store = server.model_store
    before = registered(server)
    spellings = url_spellings(store, outside, port) + path_spellings(store, outside)
    answers = {url: post(server, "/models", url=url, model_name="c").status_code
               for url in spellings + [f"{MODEL}.mar"]}  # fmt: skip
    assert set(answers.values()) == {405}, answers
    assert registered(server) == before and asked == []


def test_workflow_api_registers_nothing(server: TorchServe):
    """TorchServe 0.12 has no switch for the workflow API, which registers the models of a
    workflow archive even with the model API off: its store does not exist
    (`workflow_store=no-workflow-store`), so even a .war inside the model store is refused."""
    war = server.model_store / "wf.war"
    spec = f"models:\n  m1:\n    url: {MODEL}.mar\ndag:\n  m1: []\n"
    manifest = {"workflow": {"workflowName": "wf", "specFile": "spec.yaml", "handler": "h.py"}}
    with zipfile.ZipFile(war, "w") as archive:
        archive.writestr("WAR-INF/MANIFEST.json", json.dumps(manifest))
        archive.writestr("spec.yaml", spec)
        archive.writestr("h.py", "def pre(data, context):\n    return data\n")
    before = registered(server)
    try:
        for url in ("wf.war", f"file://{server.model_store}/wf.war"):
            response = post(server, "/workflows", url=url)
            assert response.status_code == 404, (url, response.text)
        assert registered(server) == before
    finally:
        server.request("management", "DELETE", "/workflows/wf", timeout=60)
        war.unlink()


ENDPOINTS = [("inference", "GET", "/ping"), ("inference", "POST", f"/predictions/{MODEL}"),
             ("management", "GET", "/models"), ("management", "POST", f"/models?url={MODEL}.mar"),
             ("management", "POST", "/workflows?url=wf.war"),
             ("management", "POST", "/token?type=inference")]  # fmt: skip


@pytest.mark.parametrize("api,method,path", ENDPOINTS, ids=[f"{m} {p}" for _, m, p in ENDPOINTS])
@pytest.mark.parametrize("key", ["no key", "the other API's key"])
def test_every_api_needs_its_key(server: TorchServe, api: str, method: str, path: str, key: str):
    """Token authorization (on by default since 0.11.1, never disabled here): 400
    InvalidKeyException before anything else runs, the key-minting endpoint included."""
    other = {"inference": "management", "management": "inference"}[api]
    headers = server.auth(other) if key != "no key" else {}
    response = requests.request(method, server.url(api, path), headers=headers, timeout=10)
    assert response.status_code == 400 and response.json()["type"] == "InvalidKeyException"


def other_addresses() -> list[str]:
    """This host's IPv4 addresses other than loopback."""
    return [address.address for addresses in psutil.net_if_addrs().values()
            for address in addresses
            if address.family == socket.AF_INET and not address.address.startswith("127.")]  # fmt: skip


def test_no_port_answers_on_another_address(server: TorchServe):
    """Every listener binds 127.0.0.1: from this host's other addresses, nothing answers."""
    addresses = other_addresses()
    if not addresses:
        missing("this host has no address but loopback", "run on a host with a network interface")
    ports = server.ports
    for port in (ports.inference, ports.management, ports.metrics, ports.grpc_inference,
                 ports.grpc_management):  # fmt: skip
        for address in addresses:
            with socket.socket() as sock:
                sock.settimeout(2)
                assert sock.connect_ex((address, port)) != 0, f"{address}:{port} answers"
        with socket.socket() as sock:  # while loopback does
            assert sock.connect_ex(("127.0.0.1", port)) == 0


# --------------------------------------------------------------------------- model API on


def test_no_url_passes_the_allow_list(
    registering_server: TorchServe, outside: Path, http_archive
):
    """While the model API is on (a registration window), `allowed_urls=(?!)` refuses every
    URL with a scheme: other files, other hosts, `..` in several spellings, encoded slashes
    (which passed the old store-only pattern); no remote archive is ever fetched."""
    port, asked = http_archive
    store = registering_server.model_store
    before, files = registered(registering_server), set(store.iterdir())
    for url in url_spellings(store, outside, port):
        response = post(registering_server, "/models", url=url, model_name="c")
        if response.status_code == 200:
            unregister(registering_server, "c")
        assert response.status_code == 404, (url, response.text)
    assert registered(registering_server) == before and set(store.iterdir()) == files
    assert asked == []


def test_torchserve_itself_registers_any_directory(registering_server: TorchServe, outside: Path):
    """Why the model API stays off (issue 31): a url without a file:// or http(s):// scheme
    is a path to TorchServe, never matched against allowed_urls, and a directory anywhere on
    the disk is registered as a model.  If this fails, TorchServe changed: revisit the doc."""
    directory = str(outside / "model_dir")
    response = post(registering_server, "/models", url=directory, model_name="anywhere",
                    initial_workers=0)  # fmt: skip
    try:
        assert response.status_code == 200, response.text
    finally:
        unregister(registering_server, "anywhere")


def test_manage_register_sends_no_path(registering_server: TorchServe, outside: Path):
    """The project's command refuses every spelling before TorchServe sees it."""
    management = Management(registering_server)
    before = registered(registering_server)
    spellings = path_spellings(registering_server.model_store, outside)
    for given in spellings + url_spellings(registering_server.model_store, outside, 9):
        with pytest.raises(ManagementError):
            management.register(given, name="c")
    assert registered(registering_server) == before
