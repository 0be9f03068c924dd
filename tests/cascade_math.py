"""The cascade's combination written out on its own, independently of handlers.cascade: the
oracle that the in-process (tests/handler/test_cascade.py) and the served
(tests/integration/test_cascade_served.py) cascade tests compare with."""

from __future__ import annotations

import math
from typing import Sequence


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def combined(fast: Sequence[float], bert: Sequence[float], weight: float) -> float:
    """P(positive) of a text both models scored: their log-odds averaged with `weight` on BERT."""
    return sigmoid((1 - weight) * logit(fast[1]) + weight * logit(bert[1]))
