"""The `sentiment` cascade behind a real TorchServe beside the two models it composes: the
same answers where it must agree, and /metrics counting the texts sent to BERT.
"""

from __future__ import annotations

import json

import pytest
import requests

from handlers.cascade import BERT, FAST
from scripts.ops.server import TorchServe
from tests.cascade_math import combined
from tests.metrics import deltas, key, totals


def predict(server: TorchServe, model: str, texts: list[str]) -> list[dict]:
    headers = {**server.auth("inference"), "Content-Type": "application/json"}
    url = server.url("inference", f"/predictions/{model}")
    response = requests.post(url, data=json.dumps({"text": texts}), headers=headers, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def test_served_cascade_agrees_with_the_served_models(server: TorchServe, test_texts: list[str]):
    """Served beside the two, with its configured threshold: fast's answer where fast decided,
    the configured combination of both where BERT was asked; /metrics counts the latter."""
    before = totals(server)
    cascade = predict(server, "sentiment", test_texts)
    fast = predict(server, "sentiment_fast", test_texts)
    bert = predict(server, "sentiment_bert", test_texts)
    described = requests.get(server.url("management", "/models/sentiment?customized=true"),
                             headers=server.auth("management"), timeout=30).json()  # fmt: skip
    weight = described[0]["customizedMetadata"]["bert_weight"]
    sent = [a["models"] == [FAST, BERT] for a in cascade]
    assert any(sent) and not all(sent), "the test texts should take both paths"
    for answer, f, b, both in zip(cascade, fast, bert, sent):
        assert answer["models"] == ([FAST, BERT] if both else [FAST])
        assert (f["confidence"] < described[0]["customizedMetadata"]["threshold"]) == both
        pair = [(x["probabilities"]["negative"], x["probabilities"]["positive"]) for x in (f, b)]
        expected = combined(*pair, weight) if both else f["probabilities"]["positive"]
        assert answer["probabilities"]["positive"] == pytest.approx(expected, abs=1e-4)
    escalated = key("SentimentCascadeEscalated", ModelName="sentiment")
    assert deltas(server, before, {escalated: sum(sent)}) == {escalated: sum(sent)}
