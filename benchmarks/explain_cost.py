"""Cost and faithfulness of each model's explanations, in-process, one text per call.

    python -m benchmarks.explain_cost --texts 100

Loads the handlers as TorchServe would (same model-config.yaml, one torch
thread) on the trained artifacts, explains test reviews one at a time (a
page's use) and prints milliseconds per text, with two checks of faithfulness
per method: how often the sign of the summed scores matches the predicted
label, and how often deleting the top-scored token moves the log-odds the way
its score says.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Sequence

from handlers.contract import Explanation
from handlers.sentiment_handler import SentimentHandler
from scripts import inprocess
from scripts.nsmc import read_test_reviews
from scripts.registry import BERT_CHECKPOINT, MODELS


def log_odds(handler: SentimentHandler, text: str) -> float:
    p_negative, p_positive = (max(float(p), 1e-12) for p in handler.predict_proba([text])[0])
    return math.log(p_positive / p_negative)


def deleted(text: str, explanation: Explanation) -> tuple[str, float] | None:
    """The text without its top-|score| token's first span, and that score."""
    top = max(explanation.tokens, key=lambda t: abs(t.score), default=None)
    if top is None or not top.spans:
        return None
    start, end = top.spans[0]
    return text[:start] + text[end:], top.score


def measure(handler: SentimentHandler, texts: Sequence[str]) -> dict[str, float]:
    handler.explain_texts(texts[:2])  # warm-up
    seconds, sign_agrees, deletion_agrees, deletions = [], 0, 0, 0
    for text in texts:
        started = time.perf_counter()
        [explanation] = handler.explain_texts([text])
        seconds.append(time.perf_counter() - started)
        before = log_odds(handler, text)
        total = sum(t.score for t in explanation.tokens)
        sign_agrees += (total > 0) == (before > 0)
        cut = deleted(text, explanation)
        if cut and cut[0].strip():
            deletions += 1
            deletion_agrees += (log_odds(handler, cut[0]) - before) * cut[1] < 0
    return {
        "ms_per_text_median": 1000 * statistics.median(seconds),
        "ms_per_text_mean": 1000 * statistics.fmean(seconds),
        "sum_sign_matches_label": sign_agrees / len(texts),
        "deleting_top_token_moves_as_scored": deletion_agrees / max(deletions, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=100, help="test reviews to explain")
    parser.add_argument("--data-dir", help="NSMC directory (default: $NSMC_DIR or data/nsmc)")
    parser.add_argument("--fast", type=Path, default=MODELS["sentiment_fast"].default_artifacts)
    parser.add_argument("--bert", type=Path, default=BERT_CHECKPOINT)
    args = parser.parse_args(argv)
    texts, _ = read_test_reviews(args.data_dir, args.texts)
    runs = [
        ("sentiment_fast", args.fast, {}),
        ("sentiment_bert", args.bert, {"explain_method": "gradient_x_input"}),
        ("sentiment_bert", args.bert, {"explain_method": "integrated_gradients", "ig_steps": 20}),
        ("sentiment_bert", args.bert, {"explain_method": "integrated_gradients", "ig_steps": 50}),
    ]
    for name, model_dir, overrides in runs:
        result = measure(inprocess.load_registered(name, model_dir, **overrides), texts)
        label = " ".join(f"{k}={v}" for k, v in overrides.items())
        print(f"{name} {label}: " + ", ".join(f"{k} {v:.3g}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
