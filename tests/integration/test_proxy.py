"""The front proxy (docker/nginx.conf) in front of a real TorchServe: form-encoded and multipart
bodies never reach TorchServe's form decoder (CVE-2024-29025), the contract's requests pass
unchanged, and every refusal is the contract's JSON error.  The image's own proxy: make
image-test; the flood measured: benchmarks/form_flood.py."""

from __future__ import annotations

import http.client
import json
from typing import Iterator

import pytest
import requests

from scripts.deploy.proxy import FORM_TYPES, Proxy, nginx_binary
from scripts.ops.server import TorchServe
from tests.conftest import missing

MODEL = "sentiment_fast"
TEXTS = ["정말 재밌게 잘봤습니다!", "시간 아깝다"]
MULTIPART = (b'--X\r\nContent-Disposition: form-data; name="text"\r\n\r\n'
             + "좋다".encode() + b"\r\n--X--\r\n")  # fmt: skip


@pytest.fixture(scope="module")
def proxy(server: TorchServe) -> Iterator[Proxy]:
    if nginx_binary() is None:
        missing("nginx not installed", "apt-get install nginx-light")
    with Proxy(f"127.0.0.1:{server.ports.inference}").running() as running:
        yield running


def post(url: str, server: TorchServe, body: bytes, content_type: str | None) -> requests.Response:
    headers = server.auth("inference")
    if content_type is not None:
        headers["Content-Type"] = content_type
    return requests.post(url, data=body, headers=headers, timeout=60)


@pytest.mark.parametrize("content_type,body", [
    (FORM_TYPES[0], b"text=%EC%A2%8B%EB%8B%A4&a=1&a=2"),
    ("Application/X-WWW-Form-Urlencoded; charset=utf-8", b"a=1"),
    (f"{FORM_TYPES[1]}; boundary=X", MULTIPART),
    ("multipart/mixed; boundary=X", MULTIPART),
])  # fmt: skip
def test_form_bodies_are_refused_with_json(proxy: Proxy, server: TorchServe, content_type: str,
                                           body: bytes):  # fmt: skip
    """415 with the contract's error, from the proxy; TorchServe itself would decode the form
    (and answer the handler's 400 FormEncodedBody after building every field)."""
    path = f"/predictions/{MODEL}"
    refused = post(proxy.url(path), server, body, content_type)
    assert refused.status_code == 415
    assert refused.headers["Content-Type"] == "application/json"
    error = refused.json()
    assert error["code"] == 415 and error["type"] == "UnsupportedMediaType"
    assert "application/json" in error["message"]
    if content_type.lower().startswith(FORM_TYPES):
        direct = post(server.url("inference", path), server, body, content_type)
        assert direct.status_code == 400 and direct.json()["type"] == "FormEncodedBody"


def test_the_contract_passes_unchanged(proxy: Proxy, server: TorchServe):
    """JSON, raw text and octets answer through the proxy exactly as TorchServe answers them."""
    path = f"/predictions/{MODEL}"
    for body, content_type in [
        (json.dumps({"text": TEXTS}).encode(), "application/json"),
        (json.dumps({"text": TEXTS[0]}).encode(), "application/json; charset=utf-8"),
        (TEXTS[1].encode(), "text/plain; charset=utf-8"),
        (TEXTS[0].encode(), "application/octet-stream"),
        (TEXTS[0].encode(), None),  # no Content-Type at all: raw bytes, as TorchServe reads them
        (b'{"text": 5}', "application/json"),  # the handler's own 400 passes through
    ]:
        through = post(proxy.url(path), server, body, content_type)
        direct = post(server.url("inference", path), server, body, content_type)
        assert (through.status_code, through.json()) == (direct.status_code, direct.json())
    labels = [a["label"] for a in post(proxy.url(path), server, json.dumps(
        {"text": TEXTS}).encode(), "application/json").json()]  # fmt: skip
    assert labels == ["positive", "negative"]
    ping = requests.get(proxy.url("/ping"), headers=server.auth("inference"), timeout=10)
    assert ping.status_code == 200 and ping.json()["status"] == "Healthy"


def test_a_second_content_type_header_does_not_reach_torchserve(proxy: Proxy,
                                                                server: TorchServe):  # fmt: skip
    """JSON declared first and a form type second: the proxy checks the first and sends only
    that one on, so netty never sees the form type (a form body answers as bad JSON)."""
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=60)
    body = b"a=1&a=2"
    connection.putrequest("POST", f"/predictions/{MODEL}")
    connection.putheader("Authorization", server.auth("inference")["Authorization"])
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Type", FORM_TYPES[0])
    connection.putheader("Content-Length", str(len(body)))
    connection.endheaders(body)
    response = connection.getresponse()
    answer = json.loads(response.read())
    connection.close()
    assert response.status in (400, 415), answer
    assert answer.get("type") != "FormEncodedBody"  # TorchServe did not decode a form


def test_oversized_bodies_get_413_json(proxy: Proxy, server: TorchServe):
    """Over max_request_size: 413 from the proxy, with the contract's error, also chunked."""
    size = 1_048_576
    path = proxy.url(f"/predictions/{MODEL}")
    at_limit = post(path, server, b"a" * size, "text/plain")
    assert at_limit.status_code == 400 and at_limit.json()["type"] == "TextTooLong"
    for body in (b"a" * (size + 1), iter([b"a" * 65536] * 17)):  # the second one chunked
        large = requests.post(path, data=body, timeout=60, headers={
            **server.auth("inference"), "Content-Type": "text/plain"})  # fmt: skip
        assert large.status_code == 413
        assert large.json()["type"] == "RequestTooLarge"
