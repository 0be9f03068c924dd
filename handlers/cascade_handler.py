"""sentiment: one endpoint that asks BERT only where the fast model is unsure.

Composes the two served handlers, unchanged: the archive carries each model's
artifacts in a sub-directory of its model dir (`sentiment_fast/`,
`sentiment_bert/`), and each is loaded by its own handler class through the
same hash-checked path as when it is served alone (`SentimentHandler.setup`),
with its settings from this archive's model-config.yaml (`handler.sentiment_fast`,
`handler.sentiment_bert`).  sentiment_fast scores the whole batch; texts below
`threshold` confidence also go to BERT in one call (handlers/cascade.py decides).
Each answer says which models decided it; /metrics counts the texts sent to BERT.

A handler, not a TorchServe workflow: one request is one batch slot here, while
a workflow would add a frontend hop per model and could not send only part of a
batch to BERT.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from handlers.bert_handler import SentimentBertHandler
from handlers.cascade import BERT, FAST, Cascade
from handlers.contract import Batch, Explanation, TokenScore
from handlers.fast_handler import SentimentFastHandler
from handlers.metrics import BatchMetrics
from handlers.sentiment_handler import SentimentHandler

FAST_ONLY, BOTH = (FAST,), (FAST, BERT)


def weighted(explanation: Explanation, weight: float) -> list[TokenScore]:
    return [TokenScore(t.token, weight * t.score, t.spans) for t in explanation.tokens]


class SentimentCascadeHandler(SentimentHandler):
    calibrated = False  # its models are calibrated; their combination is answered as is

    def load_model(self, model_dir: Path, config: Mapping[str, Any], context: Any) -> None:
        fast, bert = SentimentFastHandler(), SentimentBertHandler()
        fast.setup(context, model_dir / FAST, config.get(FAST) or {})
        bert.setup(context, model_dir / BERT, config.get(BERT) or {})
        self.compose(fast, bert, Cascade.from_config(config))

    def compose(self, fast: SentimentHandler, bert: SentimentHandler, cascade: Cascade) -> None:
        """The two loaded models and the rule between them (tests compose scripted models)."""
        self.fast, self.bert, self.cascade = fast, bert, cascade

    def route(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(answers, escalated): fast for every text, BERT for the unsure ones in one call."""
        fast = self.fast.probabilities(texts)
        escalated = self.cascade.escalate(fast)
        unsure = [text for text, sent in zip(texts, escalated) if sent]
        bert = self.bert.probabilities(unsure) if unsure else np.empty((0, 2))
        return self.cascade.answer(fast, bert, escalated), escalated

    def predict_proba(self, texts: list[str]) -> Sequence[Sequence[float]]:
        return self.route(texts)[0]

    def decide(self, batch: Batch) -> None:
        batch.probabilities, escalated = self.route(batch.texts)
        batch.models = [BOTH if sent else FAST_ONLY for sent in escalated]

    def explain_texts(self, texts: list[str]) -> list[Explanation]:
        """Texts not yet answered (in-process callers): route them, then explain."""
        return self.explain_routed(texts, self.route(texts)[1])

    def explain_decided(self, batch: Batch, wanted: list[bool]) -> list[Explanation]:
        """The batch's own routing (`decide` filled `models`): neither model runs twice."""
        chosen = [(text, len(models) > 1)
                  for text, models, w in zip(batch.texts, batch.models, wanted) if w]  # fmt: skip
        texts, escalated = [text for text, _ in chosen], [sent for _, sent in chosen]
        return self.calibrate_explanations(self.explain_routed(texts, escalated))

    def explain_routed(self, texts: list[str], escalated: Sequence[bool]) -> list[Explanation]:
        """The explanation of whoever decided: fast's, or both weighted as their log-odds are.

        Both models' scores are in calibrated log-odds, so the weighted scores (and
        bases) explain the combined log-odds with the same sum rule as their parts.
        """
        fast = self.fast.explanations(texts)
        unsure = [text for text, sent in zip(texts, escalated) if sent]
        bert = iter(self.bert.explanations(unsure) if unsure else [])
        w = self.cascade.bert_weight
        explanations = []
        for fast_why, sent in zip(fast, escalated):
            if not sent:
                explanations.append(fast_why)
                continue
            bert_why = next(bert)
            bases = (fast_why.base, bert_why.base)
            explanations.append(Explanation(
                f"{1 - w:g} x {FAST} ({fast_why.method}) + {w:g} x {BERT} ({bert_why.method})",
                weighted(fast_why, 1 - w) + weighted(bert_why, w),
                None if None in bases else (1 - w) * bases[0] + w * bases[1],
            ))  # fmt: skip
        return explanations

    def describe_handle(self) -> str:
        described = json.loads(super().describe_handle())
        described.update(
            threshold=self.cascade.threshold, bert_weight=self.cascade.bert_weight,
            components={FAST: json.loads(self.fast.describe_handle()),
                        BERT: json.loads(self.bert.describe_handle())},
        )  # fmt: skip
        return json.dumps(described)

    def count_batch(self, metrics: BatchMetrics, batch: Batch) -> None:
        """The texts sent to BERT too (their share: this over SentimentTexts)."""
        metrics.add("SentimentCascadeEscalated", sum(len(models) > 1 for models in batch.models))
