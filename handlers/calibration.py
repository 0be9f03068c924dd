"""Calibrated confidences: Platt scaling on the log-odds, and the error it is judged by.

A model's (p_negative, p_positive) row is turned into its log-odds z, and the
answer becomes sigmoid(a * z + b).  With a > 0 this is monotone in z; the
default fit is temperature scaling (b = 0), which keeps every label and so the
accuracy exactly, and moves only the confidence.  (A fitted b moves the labels
of texts near z = 0: fitted on reviews an earlier BERT checkpoint was trained
on, it cost 0.08 points of test accuracy, so it is available but not used.)  Naive
Bayes needs calibration most: it multiplies evidence as if n-grams were
independent and claims 0.999 where it is right 87 % of the time.

Pure numpy/scipy (no TorchServe, no scikit-learn): fitted by scripts/training/calibrate.py,
applied by handlers/sentiment_handler.py from the parameters in metadata.json.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_expit

ECE_BINS = 15
TEMPERATURE = "temperature-logodds"  # sigmoid(scale * logodds): scale fitted by log-loss
PLATT = "platt-logodds"  # sigmoid(scale * logodds + shift): both fitted


def log_odds(probabilities: Sequence[Sequence[float]]) -> np.ndarray:
    """log p_positive - log p_negative per row, finite even where a probability underflowed.

    Float64 softmax rows keep the smaller probability down to ~1e-308, so a Naive
    Bayes log-odds of 100 survives the round trip; exact zeros are clipped.
    """
    rows = np.asarray(probabilities, dtype=np.float64)
    tiny = np.finfo(np.float64).tiny
    return np.log(np.maximum(rows[:, 1], tiny)) - np.log(np.maximum(rows[:, 0], tiny))


def from_log_odds(z: np.ndarray) -> np.ndarray:
    """Log-odds -> (p_negative, p_positive) rows; each side exact, not 1 minus the other."""
    z = np.asarray(z, dtype=np.float64)
    return np.stack([expit(-z), expit(z)], axis=1)


@dataclass(frozen=True)
class Calibration:
    """sigmoid(scale * logodds + shift); the identity when a model has none."""

    scale: float = 1.0
    shift: float = 0.0
    method: str = TEMPERATURE

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> "Calibration":
        """The `calibration` entry of a metadata.json, or the identity when there is none."""
        entry = metadata.get("calibration")
        if not entry:
            return cls()
        if entry.get("method") not in (TEMPERATURE, PLATT):
            raise ValueError(f"unknown calibration method {entry.get('method')!r}")
        return cls(float(entry["scale"]), float(entry.get("shift", 0.0)), entry["method"])

    @property
    def is_identity(self) -> bool:
        return self.scale == 1.0 and self.shift == 0.0

    def log_odds(self, z: np.ndarray) -> np.ndarray:
        return self.scale * np.asarray(z, dtype=np.float64) + self.shift

    def apply(self, probabilities: Sequence[Sequence[float]]) -> np.ndarray:
        """Raw (p_negative, p_positive) rows -> calibrated rows."""
        if self.is_identity:
            return np.asarray(probabilities, dtype=np.float64)
        return from_log_odds(self.log_odds(log_odds(probabilities)))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def fit(z: np.ndarray, labels: Sequence[int], method: str = TEMPERATURE) -> Calibration:
    """The scale (and with PLATT the shift) minimising log-loss of sigmoid(scale * z + shift).

    One or two parameters, ~10k rows: a convex problem, solved by L-BFGS with its
    gradient.  Scale is kept positive so that the ranking of answers never changes.
    """
    if method not in (TEMPERATURE, PLATT):
        raise ValueError(f"unknown calibration method {method!r}")
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    # Scaled to unit spread while fitting: Naive Bayes log-odds run to the hundreds.
    spread = float(np.std(z)) or 1.0
    x = z / spread

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        scale, shift = params
        u = scale * x + shift
        nll = -np.mean(y * log_expit(u) + (1 - y) * log_expit(-u))
        residual = expit(u) - y
        return float(nll), np.array([np.mean(residual * x), np.mean(residual)])

    shift_bounds = (None, None) if method == PLATT else (0.0, 0.0)
    fitted = minimize(loss, x0=np.array([1.0, 0.0]), jac=True, method="L-BFGS-B",
                      bounds=[(1e-6, None), shift_bounds])  # fmt: skip
    if not fitted.success:
        raise RuntimeError(f"calibration fit did not converge: {fitted.message}")
    scale, shift = fitted.x
    return Calibration(float(scale / spread), float(shift), method)


@dataclass(frozen=True)
class Reliability:
    """Per confidence bin: mean confidence, accuracy and count (a reliability diagram's bars)."""

    confidence: np.ndarray
    accuracy: np.ndarray
    count: np.ndarray

    @property
    def ece(self) -> float:
        """Expected calibration error: |accuracy - confidence| weighted by the bin's share."""
        kept = self.count > 0
        weights = self.count[kept] / self.count.sum()
        return float(np.sum(weights * np.abs(self.accuracy[kept] - self.confidence[kept])))


def reliability(
    probabilities: Sequence[Sequence[float]], labels: Sequence[int], bins: int = ECE_BINS
) -> Reliability:
    """Bin every answer by its confidence (equal-width bins over [0, 1], as Guo et al. 2017)."""
    rows = np.asarray(probabilities, dtype=np.float64)
    confidence = rows.max(axis=1)
    correct = rows.argmax(axis=1) == np.asarray(labels)
    index = np.minimum((confidence * bins).astype(int), bins - 1)
    count = np.bincount(index, minlength=bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(index, confidence, minlength=bins) / count
        accuracy = np.bincount(index, correct, minlength=bins) / count
    return Reliability(mean_confidence, accuracy, count)


def ece(
    probabilities: Sequence[Sequence[float]], labels: Sequence[int], bins: int = ECE_BINS
) -> float:
    """Expected calibration error with `bins` equal-width confidence bins."""
    return reliability(probabilities, labels, bins).ece
