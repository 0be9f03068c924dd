"""SentimentFastHandler through TorchServe's own Context, without the server."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from handlers.artifacts import MissingArtifactError, TamperedArtifactError
from handlers.fast_handler import MODEL_FILE, SentimentFastHandler
from scripts.registry import MODELS
from tests.cases import BAD_REQUESTS, GOOD_REQUESTS
from tests.handler_context import make_context, run_batch

CONFIG = MODELS["sentiment_fast"].config_file
# The frontend's parser (Metric.parse of TorchServe 0.12's jar), after "[METRICS]"
METRIC_LINE = re.compile(r"\[METRICS\]\s*([\w\s]+)\.([\w\s]+):([0-9\-,.e]+)\|#([^|]*)"
                         r"(\|#type:([^|,]+))?\|#hostname:([^,]+),([^,]+)(,(.*))?")


def test_single_text(handler_and_context):
    handler, context = handler_and_context
    [(status, body, content_type)] = run_batch(
        handler, context, [({"body": "정말 최고의 영화, 감동적이에요"}, "text/plain")]
    )
    answer = json.loads(body)
    assert status == 200 and content_type == "application/json"
    assert answer["label"] == "positive"
    assert answer["probabilities"]["positive"] == pytest.approx(answer["confidence"])
    assert sum(answer["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


def test_list_keeps_input_order(handler_and_context):
    handler, context = handler_and_context
    texts = ["최악의 영화, 시간 낭비", "정말 최고의 영화, 감동적이에요", "돈 아깝다 최악"]
    [(status, body, _)] = run_batch(
        handler, context, [({"body": {"text": texts}}, "application/json")]
    )
    assert status == 200
    assert [a["label"] for a in json.loads(body)] == ["negative", "positive", "negative"]


def test_mixed_batch_answers_every_request_in_order(handler_and_context):
    """Bad requests get their 400; their batch-mates are answered as if alone."""
    handler, context = handler_and_context
    good = [(request, content_type) for _, request, content_type, _, _ in GOOD_REQUESTS]
    bad = [(request, content_type) for _, request, content_type, _ in BAD_REQUESTS]
    mixed = [item for pair in zip(good * 3, bad) for item in pair]
    results = run_batch(handler, context, mixed)
    for (request, content_type), (status, body, response_type) in zip(mixed, results):
        assert response_type == "application/json"
        alone = run_batch(handler, context, [(request, content_type)])[0]
        assert (status, body) == alone[:2]
    assert [status for status, _, _ in results] == [200, 400] * len(bad)


@pytest.mark.parametrize(
    "case_id,request_,content_type,error_type", BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS]
)
def test_bad_input_gets_named_400(handler_and_context, case_id, request_, content_type, error_type):
    handler, context = handler_and_context
    [(status, body, _)] = run_batch(handler, context, [(request_, content_type)])
    assert status == 400
    assert json.loads(body)["type"] == error_type


def test_metrics_report_batch_and_rejections(handler_and_context, caplog):
    """The worker prints metrics as [METRICS] log lines, the handler's all in one record (one
    write per batch); the frontend parses them line by line into Prometheus."""
    handler, context = handler_and_context
    caplog.set_level("INFO")
    run_batch(
        handler,
        context,
        [({"body": {"text": []}}, "application/json"), ({"body": "좋다"}, "text/plain")],
    )
    [record] = [r.getMessage() for r in caplog.records if "[METRICS]Sentiment" in r.getMessage()]
    lines = record.splitlines()
    assert all(METRIC_LINE.fullmatch(line) for line in lines), lines
    assert any(line.startswith("[METRICS]SentimentRequests.Count:2|") for line in lines), lines
    assert any(line.startswith("[METRICS]SentimentTexts.Count:1|") for line in lines), lines
    assert any("SentimentRejected" in line and "Reason:EmptyList" in line for line in lines), lines


def test_missing_artifact_is_named(fast_artifacts: Path, tmp_path: Path):
    model_dir = tmp_path / "model"
    shutil.copytree(fast_artifacts, model_dir)
    (model_dir / MODEL_FILE).unlink()
    with pytest.raises(MissingArtifactError, match=MODEL_FILE):
        SentimentFastHandler().initialize(make_context("sentiment_fast", model_dir, CONFIG))


def test_tampered_artifact_is_refused(fast_artifacts: Path, tmp_path: Path):
    model_dir = tmp_path / "model"
    shutil.copytree(fast_artifacts, model_dir)
    with open(model_dir / MODEL_FILE, "ab") as handle:
        handle.write(b"\x00")
    with pytest.raises(TamperedArtifactError, match="refusing to load"):
        SentimentFastHandler().initialize(make_context("sentiment_fast", model_dir, CONFIG))
