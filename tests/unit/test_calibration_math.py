"""Calibration arithmetic (handlers/calibration.py): fit, monotone, ECE; no model, no server."""

from __future__ import annotations

import numpy as np
import pytest

from handlers.calibration import (
    PLATT,
    Calibration,
    ece,
    fit,
    from_log_odds,
    log_odds,
    reliability,
)


def synthetic(scale: float, shift: float, n: int = 40_000, seed: int = 0):
    """Over-confident log-odds z whose true P(positive) is sigmoid(scale * z + shift)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 10.0, n)
    labels = (rng.random(n) < 1 / (1 + np.exp(-(scale * z + shift)))).astype(int)
    return z, labels


@pytest.mark.parametrize("shift", [0.0, 0.4])
def test_fit_recovers_the_true_calibration(shift: float):
    z, labels = synthetic(0.3, shift)
    fitted = fit(z, labels, PLATT)
    assert fitted.scale == pytest.approx(0.3, rel=0.05)
    assert fitted.shift == pytest.approx(shift, abs=0.08)
    raw = from_log_odds(z)
    assert ece(raw, labels) > 0.1 > 0.02 > ece(fitted.apply(raw), labels)


def test_temperature_is_monotone_and_keeps_every_label():
    z, labels = synthetic(0.3, 0.0)
    fitted = fit(z, labels)  # the default: temperature, no shift
    assert fitted.shift == 0.0 and fitted.scale == pytest.approx(0.3, rel=0.05)
    calibrated = fitted.apply(from_log_odds(z))
    assert np.all(np.diff(calibrated[np.argsort(z), 1]) >= 0)
    assert np.array_equal(calibrated.argmax(axis=1), from_log_odds(z).argmax(axis=1))
    assert ece(calibrated, labels) < 0.02


def test_log_odds_survive_naive_bayes_extremes():
    """A float64 row keeps p_negative = e^-100, so the log-odds (and the ranking) survive."""
    z = np.array([-300.0, -100.0, -1.0, 0.0, 2.5, 100.0, 300.0])
    assert log_odds(from_log_odds(z)) == pytest.approx(z, rel=1e-9)
    assert np.isfinite(log_odds([[0.0, 1.0], [1.0, 0.0]])).all()


def test_ece_by_hand():
    """Two bins: 0.95-confident and right 1 of 2 times (gap 0.45), 0.55 and right (gap 0.45)."""
    rows = [[0.05, 0.95], [0.05, 0.95], [0.45, 0.55], [0.45, 0.55]]
    labels = [1, 0, 1, 1]
    assert ece(rows, labels) == pytest.approx(0.5 * 0.45 + 0.5 * 0.45)
    curve = reliability(rows, labels)
    assert curve.count.sum() == 4 and sorted(curve.count[curve.count > 0]) == [2, 2]


def test_identity_without_an_entry_and_unknown_methods_refused():
    rows = np.array([[0.2, 0.8]])
    assert Calibration.from_metadata({}).apply(rows) == pytest.approx(rows)
    with pytest.raises(ValueError, match="unknown calibration"):
        Calibration.from_metadata({"calibration": {"method": "isotonic", "scale": 1, "shift": 0}})
