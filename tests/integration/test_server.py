"""All three models behind a real TorchServe on 127.0.0.1 (free ports, own TMPDIR), stopped after.

The request contract is the same for every one, so its tests run against each endpoint.
"""

from __future__ import annotations

import json
import os
import signal
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import yaml

from benchmarks.soak import worker_pids
from scripts.ops.server import ServerError, TorchServe
from scripts.registry import MODELS
from tests.metrics import deltas, key, totals
from tests.served import describe, predict

MODEL = "sentiment_fast"
EVERY_MODEL = pytest.mark.parametrize("model", list(MODELS))


def test_ping(server: TorchServe):
    url = server.url("inference", "/ping")
    ping = requests.get(url, headers=server.auth("inference"), timeout=10)
    assert ping.status_code == 200 and ping.json()["status"] == "Healthy"


@EVERY_MODEL
def test_describe_shows_configured_batching(server: TorchServe, model: str):
    description = describe(server, model)
    configured = yaml.safe_load(MODELS[model].config_file.read_text())
    assert description["batchSize"] == configured["batchSize"]
    assert description["maxBatchDelay"] == configured["maxBatchDelay"]
    workers = configured.get("minWorkers", 1)
    assert [w["status"] for w in description["workers"]] == ["READY"] * workers


@pytest.mark.parametrize(
    "body,content_type",
    [
        ("정말 재밌게 잘봤습니다!".encode(), "text/plain; charset=utf-8"),
        (json.dumps({"text": "정말 재밌게 잘봤습니다!"}).encode(), "application/json"),
        ("정말 재밌게 잘봤습니다!".encode(), "application/octet-stream"),
    ],
    ids=["raw text", "json", "octet-stream"],
)
@EVERY_MODEL
def test_single_text_forms_agree(server: TorchServe, body: bytes, content_type: str, model: str):
    response = predict(server, body, content_type, model)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    answer = response.json()
    assert set(answer) - {"models"} == {"label", "confidence", "probabilities"}
    assert ("models" in answer) == (model == "sentiment")  # the cascade says who decided
    reference = predict(server, "정말 재밌게 잘봤습니다!".encode(), "text/plain", model).json()
    assert answer == reference
    if model == MODEL:  # the small test BERT is too little trained to be asked for accuracy
        assert answer["label"] == "positive"


def test_list_in_order(server: TorchServe):
    texts = ["최악의 영화 시간 낭비", "정말 감동적이고 최고였어요", "돈 아까운 졸작"]
    response = predict(server, json.dumps({"text": texts}).encode(), "application/json")
    assert response.status_code == 200
    assert [a["label"] for a in response.json()] == ["negative", "positive", "negative"]


@EVERY_MODEL
def test_concurrent_mixed_traffic_is_batched_and_isolated(server: TorchServe, model: str):
    """64 concurrent requests, every 4th bad: each gets its own answer, and batches form.

    The model's workers are paused while the requests arrive, so they queue and TorchServe
    has something to batch whatever the machine's speed; then they are let go."""
    texts = [f"{i}번째 리뷰: 정말 감동적이고 최고였어요" for i in range(64)]
    alone = [predict(server, text.encode(), "text/plain", model).json() for text in texts[:8]]
    plan = [
        (b'{"text": []}', "application/json") if i % 4 == 0 else (texts[i].encode(), "text/plain")
        for i in range(64)
    ]
    workers = worker_pids(server, model)
    before = totals(server)
    arrived = key("ts_inference_requests_total", model_name=model)
    with ThreadPoolExecutor(max_workers=64) as pool:
        for pid in workers:
            os.kill(pid, signal.SIGSTOP)
        try:
            futures = [pool.submit(predict, server, body, kind, model) for body, kind in plan]
            # Every request reached TorchServe (its counter moves as it queues each one).
            assert deltas(server, before, {arrived: 64}, timeout=60)[arrived] >= 64
        finally:
            for pid in workers:
                os.kill(pid, signal.SIGCONT)
        responses = [future.result() for future in futures]
    for i, response in enumerate(responses):
        if i % 4 == 0:
            assert response.status_code == 400 and response.json()["type"] == "EmptyList"
        else:
            assert response.status_code == 200, response.text
        if 0 < i < 8 and i % 4:
            for name in ("negative", "positive"):  # batched answers equal the answers alone
                assert response.json()["probabilities"][name] == pytest.approx(
                    alone[i]["probabilities"][name], abs=1e-5
                )
    handled = key("SentimentRequests", ModelName=model)
    batches = key("SentimentBatches", ModelName=model)
    changes = deltas(server, before, {handled: 64, batches: 1})
    assert changes[handled] == 64
    assert changes[batches] < 64, f"no batching: 64 requests in {changes[batches]} batches"


def test_rejections_show_on_metrics(server: TorchServe):
    before = totals(server)
    predict(server, b'{"text": []}', "application/json")
    rejected = key("SentimentRejected", ModelName=MODEL, Reason="EmptyList")
    assert deltas(server, before, {rejected: 1}) == {rejected: 1}


def test_second_start_is_refused_clearly(server: TorchServe):
    with pytest.raises(ServerError, match="already running"):
        server.start()
    assert describe(server, MODEL)["workers"][0]["status"] == "READY"


@EVERY_MODEL
def test_customized_describe_reports_training_metadata(server: TorchServe, model: str):
    url = server.url("management", f"/models/{model}?customized=true")
    response = requests.get(url, headers=server.auth("management"), timeout=30)
    assert response.status_code == 200, response.text
    custom = response.json()[0]["customizedMetadata"]  # the frontend parses the JSON
    assert custom["labels"] == ["negative", "positive"]
    assert custom["model_version"] == "1.0"
    trained = custom["components"].values() if model == "sentiment" else [custom]
    for metadata in trained:  # the cascade describes each of its two models
        assert 0.5 < metadata["test_accuracy"] <= 1 and len(metadata["train_file_sha256"]) == 64
        assert metadata["created_at"] and metadata["calibration"]["scale"] > 0
