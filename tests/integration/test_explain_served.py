"""/explanations through a real TorchServe (`server` fixture), alone and mixed with predictions."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from scripts.ops.server import TorchServe
from scripts.registry import MODELS


def explain_http(server: TorchServe, model: str, body: bytes) -> requests.Response:
    headers = {**server.auth("inference"), "Content-Type": "application/json"}
    url = server.url("inference", f"/explanations/{model}")
    return requests.post(url, data=body, headers=headers, timeout=60)


@pytest.mark.parametrize("model", list(MODELS))
def test_explanations_api(server: TorchServe, model: str):
    texts = ["정말 재밌게 잘봤습니다!", "돈 아깝다 최악의 영화"]
    response = explain_http(server, model, json.dumps({"text": texts}).encode())
    assert response.status_code == 200, response.text
    answers = response.json()
    assert [a["text"] for a in answers] == texts
    for answer, text in zip(answers, texts):
        assert answer["label"] in ("positive", "negative") and answer["method"]
        assert answer["tokens"]
        for token in answer["tokens"]:
            assert all(text[s:e] == token["token"] for s, e in token["spans"])
    bad = explain_http(server, model, b'{"text": []}')
    assert bad.status_code == 400 and bad.json()["type"] == "EmptyList"


def test_concurrent_explanations_and_predictions(server: TorchServe):
    """Mixed in TorchServe's batches, every request still gets the kind of answer it asked for."""
    headers = {**server.auth("inference"), "Content-Type": "application/json"}

    def call(i: int) -> tuple[str, dict]:
        kind = "explanations" if i % 2 else "predictions"
        url = server.url("inference", f"/{kind}/sentiment_fast")
        body = json.dumps({"text": f"{i}번째: 정말 재밌게 잘봤습니다!"}).encode()
        return kind, requests.post(url, data=body, headers=headers, timeout=60).json()

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(call, range(32)))
    for kind, answer in answers:
        assert ("tokens" in answer) == (kind == "explanations"), (kind, answer)
