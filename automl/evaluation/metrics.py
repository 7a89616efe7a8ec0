"""Held-out metrics by scikit-learn scorer name, reported as plain values."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import check_scoring


def evaluate(estimator: Any, X: Any, y: np.ndarray, report: dict[str, str]) -> dict[str, float]:
    """Score ``estimator`` with each scorer in ``report`` ({metric name: scorer name}).

    Predictions are computed once for all scorers; ``neg_*`` scorers are reported with
    their sign flipped (a log loss of 0.3, not -0.3).
    """
    scorer = check_scoring(estimator, scoring=list(report.values()))
    raw = scorer(estimator, X, y)
    return {name: float(-raw[s] if s.startswith("neg_") else raw[s]) for name, s in report.items()}
