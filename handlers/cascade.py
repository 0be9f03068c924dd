"""The cascade's decision, as pure functions of calibrated probabilities (no TorchServe).

sentiment_fast answers every text; a text whose calibrated confidence is below
`threshold` also goes to sentiment_bert, and its answer is the weighted average
of the two models' calibrated log-odds.  Threshold 0 is fast alone; a threshold
above 1 sends every text to both.  Used by handlers/cascade_handler.py to serve
and by scripts/training/evaluate.py to choose the settings and sweep them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from handlers.calibration import from_log_odds, log_odds

FAST, BERT = "sentiment_fast", "sentiment_bert"


@dataclass(frozen=True)
class Cascade:
    threshold: float
    bert_weight: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.bert_weight <= 1.0:
            raise ValueError(f"bert_weight must be within [0, 1], got {self.bert_weight}")
        if self.threshold < 0.0:
            raise ValueError(f"threshold must be >= 0, got {self.threshold}")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Cascade":
        """The `threshold` and `bert_weight` of model-config.yaml's handler section."""
        missing = [key for key in ("threshold", "bert_weight") if key not in config]
        if missing:
            raise ValueError(f"the cascade's handler config lacks {', '.join(missing)}")
        return cls(float(config["threshold"]), float(config["bert_weight"]))

    def escalate(self, fast: np.ndarray) -> np.ndarray:
        """Which texts go to BERT too: fast's calibrated confidence is below the threshold."""
        return np.asarray(fast).max(axis=1) < self.threshold

    def combine(self, fast: np.ndarray, bert: np.ndarray) -> np.ndarray:
        """Both models' rows -> the rows of their weighted calibrated log-odds."""
        w = self.bert_weight
        return from_log_odds((1 - w) * log_odds(fast) + w * log_odds(bert))

    def answer(self, fast: np.ndarray, bert: np.ndarray, escalated: np.ndarray) -> np.ndarray:
        """Every text's rows: fast's, or for escalated texts (`bert` holds only theirs) both."""
        rows = np.array(fast, dtype=np.float64)
        if escalated.any():
            rows[escalated] = self.combine(rows[escalated], bert)
        return rows
