"""What one text can do to its batch: nothing.

Before: a checkpoint with fewer positions than the archive's max_length (64) raised on
any longer text, and any exception in the model call failed the whole batch with
TorchServe's bare 503.  Now texts are cut to what the checkpoint embeds, and a batch
whose model call raises is answered request by request: only the failing one gets an
error (500, JSON), its batch-mates their answers.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    RobertaConfig,
    RobertaForSequenceClassification,
)

from handlers.bert_handler import SentimentBertHandler
from handlers.bert_settings import position_limit
from scripts.packaging.bert_onnx import export
from scripts.registry import MODELS
from tests.checkpoints import random_bert
from tests.handler_context import make_context, run_batch

CONFIG = MODELS["sentiment_bert"].config_file  # handler.max_length: 64
SHORT = ["정말 재밌다", "최악의 영화", "그냥 그래요 ㅋㅋ"]
LONG = "정말 재밌다 최악의 영화 " * 100  # ~1,400 characters, hundreds of word pieces


def json_request(text: str | list[str]) -> tuple[dict, str]:
    return {"body": {"text": text}}, "application/json"


def load(model_dir: Path) -> tuple[SentimentBertHandler, object]:
    context = make_context("sentiment_bert", model_dir, CONFIG)
    handler = SentimentBertHandler()
    handler.initialize(context)
    return handler, context


@pytest.fixture(scope="module")
def short_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint that embeds 32 positions, under an archive config that asks for 64."""
    return random_bert(tmp_path_factory.mktemp("short_bert"), max_position_embeddings=32)


def transformers_answer(model_dir: Path, text: str, max_length: int) -> list[float]:
    """The checkpoint's own probabilities for `text` cut to `max_length` tokens."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    encoded = tokenizer([text], truncation=True, max_length=max_length, return_tensors="pt")
    with torch.inference_mode():
        return torch.softmax(model(**encoded).logits, dim=-1)[0].tolist()


def test_long_text_is_cut_to_the_checkpoints_positions(short_bert_dir: Path):
    """Short texts and one far longer than 32 tokens in one batch: every request answered,
    the long one as transformers answers its first 32 tokens, and it can be explained."""
    handler, context = load(short_bert_dir)
    assert handler.max_length == 32
    requests = [json_request(text) for text in SHORT] + [json_request(LONG), json_request(LONG)]
    results = run_batch(handler, context, requests, explain=[False] * 4 + [True])
    assert [status for status, _, _ in results] == [200] * 5, results
    answer, explained = json.loads(results[3][1]), json.loads(results[4][1])
    expected = transformers_answer(short_bert_dir, LONG, 32)
    assert [answer["probabilities"][k] for k in ("negative", "positive")] == pytest.approx(
        expected, abs=1e-5
    )
    tokens = explained["tokens"]
    assert 0 < len(tokens) <= 32 and tokens[-1]["spans"][-1][1] < len(explained["text"]) // 2


def test_onnx_export_of_a_short_checkpoint_serves_long_texts(short_bert_dir, tmp_path: Path):
    """The build's export traces and checks within the checkpoint's limit too."""
    model_dir = tmp_path / "exported"
    shutil.copytree(short_bert_dir, model_dir)
    export(model_dir)
    handler, context = load(model_dir)
    assert handler.runtime == "onnx"
    results = run_batch(handler, context, [json_request(SHORT), json_request(LONG)])
    assert [status for status, _, _ in results] == [200, 200]


def test_position_limit_reads_the_tokenizer_and_the_architectures_offset():
    """min(tokenizer limit when real, positions minus RoBERTa's padding_idx + 1)."""
    bert = SimpleNamespace(model_type="bert", max_position_embeddings=32)
    unlimited = SimpleNamespace(model_max_length=int(1e30))
    assert position_limit(bert, unlimited) == 32
    assert position_limit(bert, SimpleNamespace(model_max_length=16)) == 16
    assert position_limit(SimpleNamespace(model_type="x"), unlimited) is None
    roberta = RobertaConfig(vocab_size=20, hidden_size=16, num_hidden_layers=1,
                            num_attention_heads=2, intermediate_size=32,
                            max_position_embeddings=34, pad_token_id=1)  # fmt: skip
    limit = position_limit(roberta, unlimited)
    assert limit == 32
    model = RobertaForSequenceClassification(roberta).eval()
    with torch.inference_mode():
        model(input_ids=torch.full((1, limit), 5))  # the last position it has
        with pytest.raises((IndexError, RuntimeError)):  # past its position table
            model(input_ids=torch.full((1, limit + 1), 5))


def test_a_request_the_model_fails_on_costs_only_itself(
    random_bert_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    """The model raises on one request's text: it gets a 500 JSON error, its batch-mates
    (a list, an explanation, a bad request with its own 400) are answered as if alone."""
    handler, context = load(random_bert_dir)
    run_logits = handler._logits

    def failing_logits(texts: list[str]):
        if any("폭탄" in text for text in texts):
            raise RuntimeError("the model broke on this text")
        return run_logits(texts)

    monkeypatch.setattr(handler, "_logits", failing_logits)
    requests = [json_request(SHORT[0]), json_request("이 영화는 폭탄"), json_request(SHORT),
                json_request(SHORT[1]), ({"body": {"txt": "x"}}, "application/json")]  # fmt: skip
    results = run_batch(handler, context, requests, explain=[False, False, False, True, False])
    assert [status for status, _, _ in results] == [200, 500, 200, 200, 400]
    assert context.get_response_status(1) == (500, "Internal Server Error")
    error = json.loads(results[1][1])
    assert error["code"] == 500 and error["type"] == "ModelError"
    assert "RuntimeError" in error["message"]
    alone = run_batch(handler, context, [requests[0], requests[2]])
    assert [body for _, body, _ in alone] == [results[0][1], results[2][1]]
    assert json.loads(results[3][1])["tokens"]
    assert all(content_type == "application/json" for _, _, content_type in results)
