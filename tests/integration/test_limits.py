"""Limits: configured in one place each, the ones the tests probe, and each answered with a 4xx.

Request size: config.properties `max_request_size`; texts per request and characters per
text: the `handler:` section of archive/<model>/model-config.yaml; time: `responseTimeout`.
"""

from __future__ import annotations

import json

import pytest
import requests
import yaml

from scripts.ops.server import BASE_CONFIG, TorchServe, read_properties
from scripts.registry import MODELS
from tests.cases import LONG_TEXT, MAX_REQUEST_SIZE, TOO_MANY
from tests.served import predict

BOTH = pytest.mark.parametrize("model", list(MODELS))


def _model_config(model: str) -> dict:
    return yaml.safe_load(MODELS[model].config_file.read_text())


@BOTH
def test_the_tables_probe_the_configured_limits(model: str):
    handler = _model_config(model)["handler"]
    assert len(LONG_TEXT) == handler["max_text_chars"] + 1
    assert len(TOO_MANY["text"]) == handler["max_texts"] + 1
    assert int(read_properties(BASE_CONFIG)["max_request_size"]) == MAX_REQUEST_SIZE
    assert 0 < _model_config(model)["responseTimeout"] <= 120


@BOTH
def test_largest_legal_request_is_answered(server: TorchServe, model: str):
    """max_texts texts of max_text_chars each (ASCII, so under max_request_size): a 200 with
    every answer, well inside responseTimeout, not a worker timeout."""
    handler = _model_config(model)["handler"]
    texts = [("good movie " * 200)[: handler["max_text_chars"]]] * handler["max_texts"]
    body = json.dumps({"text": texts}).encode()
    assert len(body) < MAX_REQUEST_SIZE
    response = predict(server, body, "application/json", model)
    assert response.status_code == 200, response.text[:300]
    assert len(response.json()) == handler["max_texts"]


def test_body_over_max_request_size_without_length_gets_413(server: TorchServe):
    """A chunked body (no Content-Length) is cut off at the limit too, not read forever."""
    chunks = iter([b"a" * 65_536] * (MAX_REQUEST_SIZE // 65_536 + 2))
    url = server.url("inference", "/predictions/sentiment_fast")
    headers = {**server.auth("inference"), "Content-Type": "text/plain"}
    response = requests.post(url, data=chunks, headers=headers, timeout=30)
    assert response.status_code == 413


@pytest.mark.parametrize(
    "what,extra_headers,query",
    [
        ("a 20 KB header", {"X-Padding": "a" * 20_000}, ""),
        ("500 headers", {f"X-H{i}": "a" * 40 for i in range(500)}, ""),
        ("a 10 KB URL", {}, "?q=" + "a" * 10_000),
    ],
)
def test_request_head_over_frontend_limits_gets_json_400(server, what, extra_headers, query):
    url = server.url("inference", f"/predictions/sentiment_fast{query}")
    headers = {**server.auth("inference"), "Content-Type": "text/plain", **extra_headers}
    response = requests.post(url, data="좋다".encode(), headers=headers, timeout=30)
    assert response.status_code == 400, response.text
    assert response.json()["type"] == "BadRequestException"
