"""The `sentiment` cascade in-process: routing by threshold, per-text answers and errors, and
agreement with its two models.

A scripted model pair (answers the test sets) checks the routing itself; the real test
archives check that the cascade agrees with the two models where it must (threshold 0 = fast
alone, above 1 = both).  Served: tests/integration/test_cascade_served.py.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Sequence

import pytest

from handlers.calibration import Calibration
from handlers.cascade import BERT, FAST, Cascade
from handlers.cascade_handler import SentimentCascadeHandler
from handlers.contract import Explanation, Limits, TokenScore
from handlers.sentiment_handler import SentimentHandler
from scripts.inprocess import load_archive
from tests.cascade_math import combined, logit, sigmoid
from tests.cases import BAD_REQUESTS, GOOD_REQUESTS
from tests.handler_context import make_context, run_batch

SURE, UNSURE, LEANING = "정말 최고의 영화", "그냥 그랬다", "볼만은 한데"
FAST_P = {SURE: 0.95, UNSURE: 0.6, LEANING: 0.3}  # confidence 0.95, 0.6, 0.7
BERT_P = {SURE: 0.1, UNSURE: 0.1, LEANING: 0.9}


class Scripted(SentimentHandler):
    """A model whose P(positive) per text the test chose (others: from the text's length)."""

    def __init__(self, name: str, answers: dict[str, float]) -> None:
        super().__init__()
        self.name, self.answers, self.calls, self.explained = name, answers, [], []
        self.calibration = Calibration()

    def load_model(self, *args) -> None:  # nothing to load
        pass

    def p(self, text: str) -> float:
        return self.answers.get(text, (len(text) % 10 + 0.5) / 10)

    def predict_proba(self, texts: list[str]) -> Sequence[Sequence[float]]:
        self.calls.append(list(texts))
        return [[1 - self.p(t), self.p(t)] for t in texts]

    def explain_texts(self, texts: list[str]) -> list[Explanation]:
        self.explained.append(list(texts))
        return [Explanation(self.name, [TokenScore(t[:2], logit(self.p(t)), ((0, 2),))], 0.0)
                for t in texts]  # fmt: skip


def scripted_cascade(threshold: float, bert_weight: float = 0.5):
    context = make_context("sentiment", Path("."), {"handler": {}})
    handler = SentimentCascadeHandler()
    handler.context, handler.limits, handler.calibration = context, Limits(), Calibration()
    pair = Scripted(FAST, FAST_P), Scripted(BERT, BERT_P)
    handler.compose(*pair, Cascade(threshold, bert_weight))
    return handler, context


def ask(handler, context, texts: list[str], explain: bool = False) -> list[dict]:
    [(status, body, _)] = run_batch(handler, context, [({"body": {"text": texts}},
                                    "application/json")], explain=[explain])  # fmt: skip
    assert status == 200, body
    return json.loads(body)


def test_routes_only_unsure_texts_to_bert_in_one_call():
    handler, context = scripted_cascade(threshold=0.8, bert_weight=0.25)
    answers = ask(handler, context, [SURE, UNSURE, LEANING])
    assert handler.fast.calls == [[SURE, UNSURE, LEANING]]
    assert handler.bert.calls == [[UNSURE, LEANING]]
    assert [a["models"] for a in answers] == [[FAST], [FAST, BERT], [FAST, BERT]]
    assert answers[0]["probabilities"]["positive"] == pytest.approx(0.95, abs=1e-6)
    for answer, text in zip(answers[1:], (UNSURE, LEANING)):
        expected = sigmoid(0.75 * logit(FAST_P[text]) + 0.25 * logit(BERT_P[text]))
        assert answer["probabilities"]["positive"] == pytest.approx(expected, abs=1e-6)
    assert answers[2]["label"] == "negative"  # 0.75 x fast's -0.85 outweighs 0.25 x bert's +2.2


def test_threshold_zero_is_fast_alone_and_above_one_is_both_for_every_text():
    texts = [SURE, UNSURE, LEANING]
    alone, _ = scripted_cascade(threshold=0.0)
    answers = ask(alone, alone.context, texts)
    assert alone.bert.calls == [] and all(a["models"] == [FAST] for a in answers)
    assert [a["probabilities"]["positive"] for a in answers] == pytest.approx(
        [FAST_P[t] for t in texts], abs=1e-6
    )
    both, _ = scripted_cascade(threshold=1.01)
    answers = ask(both, both.context, texts)
    assert both.bert.calls == [texts] and all(a["models"] == [FAST, BERT] for a in answers)


def test_explanations_come_from_the_models_that_decided():
    handler, context = scripted_cascade(threshold=0.8, bert_weight=0.25)
    sure, unsure = ask(handler, context, [SURE, UNSURE], explain=True)
    assert sure["method"] == FAST and len(sure["tokens"]) == 1
    assert FAST in unsure["method"] and BERT in unsure["method"]
    scores = [t["score"] for t in unsure["tokens"]]
    assert scores == pytest.approx([0.75 * logit(0.6), 0.25 * logit(0.1)], abs=1e-6)
    # the weighted parts add up to the combined log-odds, as each part did to its own
    p = unsure["probabilities"]["positive"]
    assert unsure["base"] + sum(scores) == pytest.approx(logit(p), abs=1e-4)


def test_explanation_requests_reuse_the_batch_routing():
    """decide() already scored the batch: explaining it must not run either model again."""
    handler, context = scripted_cascade(threshold=0.8)
    asked = [({"body": {"text": [SURE, UNSURE]}}, "application/json"),
             ({"body": {"text": [LEANING, SURE]}}, "application/json")]  # fmt: skip
    results = run_batch(handler, context, asked, explain=[True, False])
    assert [status for status, _, _ in results] == [200, 200]
    assert handler.fast.calls == [[SURE, UNSURE, LEANING, SURE]]
    assert handler.bert.calls == [[UNSURE, LEANING]]
    assert handler.fast.explained == [[SURE, UNSURE]] and handler.bert.explained == [[UNSURE]]
    explained, predicted = (json.loads(body) for _, body, _ in results)
    assert [a["models"] for a in explained] == [[FAST], [FAST, BERT]]
    assert "tokens" in explained[1] and "tokens" not in predicted[0]


def test_mixed_batch_keeps_errors_and_answers_per_request():
    handler, context = scripted_cascade(threshold=0.7)
    good = [(request, content_type) for _, request, content_type, _, _ in GOOD_REQUESTS]
    bad = [(request, content_type) for _, request, content_type, _ in BAD_REQUESTS]
    mixed = [item for pair in zip(good * 3, bad) for item in pair]
    results = run_batch(handler, context, mixed)
    assert [status for status, _, _ in results] == [200, 400] * len(bad)
    for (request, content_type), (status, body, _) in zip(mixed, results):
        assert (status, body) == run_batch(handler, context, [(request, content_type)])[0][:2]
        if status == 200:
            answers = json.loads(body)
            answers = answers.get("predictions", answers) if isinstance(answers, dict) else answers
            for answer in answers if isinstance(answers, list) else [answers]:
                assert answer["models"] in ([FAST], [FAST, BERT])


def test_escalations_are_counted_on_metrics(caplog):
    handler, context = scripted_cascade(threshold=0.8)
    caplog.set_level("INFO")
    ask(handler, context, [SURE, UNSURE, LEANING, SURE])
    lines = [r.getMessage() for r in caplog.records if "SentimentCascade" in r.getMessage()]
    assert any(line.startswith("[METRICS]SentimentCascadeEscalated.Count:2|") for line in lines)


def test_settings_are_checked():
    with pytest.raises(ValueError, match="bert_weight"):
        Cascade(0.8, 1.5)
    with pytest.raises(ValueError, match="lacks threshold"):
        Cascade.from_config({"bert_weight": 0.5})


# --------------------------------------------------------------------------- real artifacts


def test_archive_agrees_with_its_two_models(
    model_store: Path, test_texts: list[str], tmp_path: Path
):
    """In-process, from the built archives: threshold 0 = fast alone, above 1 = both combined."""
    unpacked = (tmp_path / str(i) for i in itertools.count())  # each load its own directory

    def load(name: str, **overrides):
        return load_archive(model_store / f"{name}.mar", next(unpacked), overrides)

    fast = load("sentiment_fast").probabilities(test_texts)
    bert = load("sentiment_bert").probabilities(test_texts)
    alone = load("sentiment", threshold=0.0).probabilities(test_texts)
    assert alone == pytest.approx(fast, abs=1e-9)
    both = load("sentiment", threshold=1.01, bert_weight=0.3).probabilities(test_texts)
    expected = [combined(f, b, 0.3) for f, b in zip(fast, bert)]
    assert both[:, 1] == pytest.approx(expected, abs=1e-5)
