"""sentiment_fast behind a real TorchServe on 127.0.0.1 (free ports, own TMPDIR), stopped after."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import yaml

from scripts.build_archive import MODELS
from scripts.server import TorchServe
from tests.cases import LONG_TEXT, TOO_MANY

MODEL = "sentiment_fast"

# The HTTP forms of the bad inputs: (id, raw body bytes, Content-Type or None, error type).
BAD_HTTP_BODIES = [
    ("empty body", b"", "text/plain", "EmptyBody"),
    (
        "no content type (curl -d)",
        '{"text": "좋다"}'.encode(),
        "application/x-www-form-urlencoded",
        "FormEncodedBody",
    ),
    ("invalid utf-8", b"\xff\xfe\xfa", "text/plain", "InvalidUTF8"),
    ("invalid utf-8 octets", b"\xc3\x28", "application/octet-stream", "InvalidUTF8"),
    ("truncated json", b'{"text": "', "application/json", "InvalidJSON"),
    ("deeply nested json", b"[" * 100_000 + b"]" * 100_000, "application/json", "InvalidJSON"),
    ("text missing", b'{"review": "x"}', "application/json", "MissingText"),
    ("text null", b'{"text": null}', "application/json", "InvalidText"),
    ("text number", b'{"text": 12}', "application/json", "InvalidText"),
    ("nested list", b'{"text": [["a"]]}', "application/json", "InvalidText"),
    ("empty list", b'{"text": []}', "application/json", "EmptyList"),
    ("whitespace text", b'{"text": "  \\n "}', "application/json", "EmptyText"),
    ("too many texts", json.dumps(TOO_MANY).encode(), "application/json", "TooManyTexts"),
    ("text too long", json.dumps({"text": LONG_TEXT}).encode(), "application/json", "TextTooLong"),
    ("json list body", b'["a"]', "application/json", "InvalidBody"),
]


def predict(
    server: TorchServe, body: bytes, content_type: str | None, path: str = MODEL
) -> requests.Response:
    headers = server.auth("inference")
    if content_type:
        headers["Content-Type"] = content_type
    return requests.post(
        server.url("inference", f"/predictions/{path}"), data=body, headers=headers, timeout=30
    )


def metric_total(server: TorchServe, name: str) -> float:
    text = requests.get(server.url("metrics", "/metrics"), timeout=10).text
    pattern = re.compile(rf'^{name}\{{[^}}]*ModelName="{MODEL}"[^}}]*\}} ([0-9.e+]+)$', re.M)
    return sum(float(value) for value in pattern.findall(text))


def test_ping_and_describe(server: TorchServe):
    ping = requests.get(
        server.url("inference", "/ping"), headers=server.auth("inference"), timeout=10
    )
    assert ping.status_code == 200 and ping.json()["status"] == "Healthy"
    described = requests.get(
        server.url("management", f"/models/{MODEL}"), headers=server.auth("management"), timeout=10
    )
    assert described.status_code == 200
    [model] = described.json()
    configured = yaml.safe_load(MODELS[MODEL].config_file.read_text())
    assert (model["batchSize"], model["maxBatchDelay"]) == (
        configured["batchSize"],
        configured["maxBatchDelay"],
    )
    assert [w["status"] for w in model["workers"]] == ["READY"]


def test_requests_without_key_are_refused(server: TorchServe):
    response = requests.post(
        server.url("inference", f"/predictions/{MODEL}"), data="좋다".encode(), timeout=10
    )
    assert response.status_code in (400, 401)
    assert requests.get(server.url("management", "/models"), timeout=10).status_code in (400, 401)


@pytest.mark.parametrize(
    "body,content_type",
    [
        ("정말 재밌게 잘봤습니다!".encode(), "text/plain; charset=utf-8"),
        (json.dumps({"text": "정말 재밌게 잘봤습니다!"}).encode(), "application/json"),
        ("정말 재밌게 잘봤습니다!".encode(), "application/octet-stream"),
    ],
    ids=["raw text", "json", "octet-stream"],
)
def test_single_text_forms_agree(server: TorchServe, body: bytes, content_type: str):
    response = predict(server, body, content_type)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    answer = response.json()
    assert answer["label"] == "positive"
    assert set(answer) == {"label", "confidence", "probabilities"}


def test_list_in_order(server: TorchServe):
    texts = ["최악의 영화 시간 낭비", "정말 감동적이고 최고였어요", "돈 아까운 졸작"]
    response = predict(server, json.dumps({"text": texts}).encode(), "application/json")
    assert response.status_code == 200
    assert [a["label"] for a in response.json()] == ["negative", "positive", "negative"]


@pytest.mark.parametrize(
    "case_id,body,content_type,error_type", BAD_HTTP_BODIES, ids=[c[0] for c in BAD_HTTP_BODIES]
)
def test_bad_input_gets_json_400(server: TorchServe, case_id, body, content_type, error_type):
    response = predict(server, body, content_type)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["code"] == 400 and error["type"] == error_type and error["message"]


def test_body_over_frontend_limit_gets_413(server: TorchServe):
    response = predict(server, b"a" * 2_000_000, "text/plain")
    assert response.status_code == 413


def test_concurrent_mixed_traffic_is_batched_and_isolated(server: TorchServe):
    """64 concurrent requests, every 4th bad: each gets its own answer, and batches form."""
    batches_before = metric_total(server, "SentimentBatches")
    requests_before = metric_total(server, "SentimentRequests")
    good = ("정말 감동적이고 최고였어요".encode(), "text/plain", 200, "positive")
    bad = (b'{"text": []}', "application/json", 400, "EmptyList")
    plan = [bad if i % 4 == 0 else good for i in range(64)]
    with ThreadPoolExecutor(max_workers=32) as pool:
        responses = list(pool.map(lambda item: predict(server, item[0], item[1]), plan))
    for (_, _, status, expected), response in zip(plan, responses):
        assert response.status_code == status, response.text
        body = response.json()
        assert (body["label"] if status == 200 else body["type"]) == expected
    batches = metric_total(server, "SentimentBatches") - batches_before
    handled = metric_total(server, "SentimentRequests") - requests_before
    assert handled == 64
    assert batches < handled, f"no batching: {handled} requests in {batches} batches"


def test_server_stays_healthy_after_bad_input(server: TorchServe):
    pids_before = [w["pid"] for w in _workers(server)]
    for _, body, content_type, _ in BAD_HTTP_BODIES:
        predict(server, body, content_type)
    assert [w["pid"] for w in _workers(server)] == pids_before
    assert predict(server, "재밌다".encode(), "text/plain").status_code == 200


def test_rejections_show_on_metrics(server: TorchServe):
    predict(server, b'{"text": []}', "application/json")
    text = requests.get(server.url("metrics", "/metrics"), timeout=10).text
    assert re.search(r'SentimentRejected\{[^}]*Reason="EmptyList"', text)
    assert "ts_inference_latency_microseconds" in text


def _workers(server: TorchServe) -> list[dict]:
    response = requests.get(
        server.url("management", f"/models/{MODEL}"), headers=server.auth("management"), timeout=10
    )
    return response.json()[0]["workers"]
