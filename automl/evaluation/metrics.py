"""Held-out metrics by scikit-learn scorer name, reported as plain values.

A model predicts the held-out rows once (:func:`record`); every metric, its bootstrap
confidence interval and its value on a slice of the rows are scored from those recorded
predictions by the same scikit-learn scorers (:func:`score`).
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.utils.metaestimators import available_if

from automl.scorers import scorer as scorer_for

log = logging.getLogger(__name__)


class Recorded(BaseEstimator):
    """A model's predictions on some rows, replayed to scikit-learn's scorers: labels,
    and for a classifier its probabilities (and decision function, where it has one: the
    scorers prefer it, e.g. ROC AUC)."""

    def __init__(
        self,
        labels: np.ndarray,
        proba: np.ndarray | None = None,
        decision: np.ndarray | None = None,
        classes: np.ndarray | None = None,
    ) -> None:
        self.labels = labels
        self.proba = proba
        self.decision = decision
        self.classes = classes
        if classes is not None:
            self.classes_ = classes

    def take(self, rows: np.ndarray) -> Recorded:
        """The predictions of ``rows`` only (positions or a boolean mask)."""
        pick = None if self.proba is None else self.proba[rows]
        decision = None if self.decision is None else self.decision[rows]
        return Recorded(self.labels[rows], pick, decision, self.classes)

    def fit(self, X: Any = None, y: Any = None) -> Recorded:
        """Nothing to fit: the predictions are recorded (scikit-learn's checks ask for it)."""
        return self

    def predict(self, X: Any) -> np.ndarray:
        return self.labels

    @available_if(lambda self: self.proba is not None)
    def predict_proba(self, X: Any) -> np.ndarray:
        return self.proba

    @available_if(lambda self: self.decision is not None)
    def decision_function(self, X: Any) -> np.ndarray:
        return self.decision

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        return f"Recorded({len(self)} rows)"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.estimator_type = "regressor" if self.classes is None else "classifier"
        return tags


def record(estimator: Any, X: Any) -> Recorded:
    """What ``estimator`` predicts for ``X``: every output a scorer may ask for, once."""
    classes = getattr(estimator, "classes_", None)
    if classes is None or not hasattr(estimator, "predict_proba"):
        return Recorded(np.asarray(estimator.predict(X)))
    decision = estimator.decision_function(X) if hasattr(estimator, "decision_function") else None
    return Recorded(estimator.predict(X), estimator.predict_proba(X), decision, classes)


def score(
    recorded: Recorded,
    y: np.ndarray,
    report: dict[str, str],
    weights: np.ndarray | None = None,
) -> dict[str, float]:
    """Each scorer in ``report`` ({metric name: scorer name}) on ``recorded`` predictions,
    rows counting ``weights`` (None: once); ``neg_*`` scorers are reported with their sign
    flipped (a log loss of 0.3, not -0.3). A metric the rows do not define (AUC one vs
    rest on test rows that lack a class) is left out, and the log says why."""
    n_classes = None if recorded.classes is None else len(recorded.classes_)
    extra = {} if weights is None else {"sample_weight": weights}
    values = {}
    for name, scorer in report.items():
        found = scorer_for(scorer, n_classes)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UndefinedMetricWarning)
            try:
                value = plain(found(recorded, None, y, **extra), scorer)
            except ValueError as exc:
                value, caught = np.nan, [" ".join(str(exc).split())]
        if np.isfinite(value):
            values[name] = value
        else:
            why = [str(getattr(w, "message", w)) for w in caught] or ["not a number"]
            log.warning("test metric %s left out: %s", name, why[0])
    return values


def plain(value: float, scorer: str) -> float:
    return float(-value if scorer.startswith("neg_") else value)


def evaluate(estimator: Any, X: Any, y: np.ndarray, report: dict[str, str]) -> dict[str, float]:
    """Score ``estimator`` on ``X``, ``y`` with each scorer in ``report`` (see :func:`score`);
    it predicts once for all scorers."""
    return score(record(estimator, X), y, report)


def score_each(
    recorded: Recorded, y: np.ndarray, report: dict[str, str]
) -> tuple[dict[str, float | None], dict[str, str]]:
    """:func:`score` metric by metric, for a few rows (a slice): the values, None where a
    metric is not defined on them, and why ({metric: reason}), instead of an error."""
    values: dict[str, float | None] = {}
    reasons: dict[str, str] = {}
    present, known = (
        len(np.unique(y)),
        len(recorded.classes_) if recorded.classes is not None else 0,
    )
    missing = f"only {present} of the {known} classes in these rows" if present < known else ""
    for name, scorer in report.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UndefinedMetricWarning)
            found = scorer_for(scorer, None if recorded.classes is None else known)
            try:
                value = plain(found(recorded, None, y), scorer)
            except ValueError as exc:
                value, reasons[name] = None, missing or " ".join(str(exc).split())
        warned = [str(w.message) for w in caught if issubclass(w.category, UndefinedMetricWarning)]
        if value is not None and (warned or not np.isfinite(value)):
            value, reasons[name] = None, missing or (warned or ["not defined on these rows"])[0]
        values[name] = value
    return values, reasons


def bootstrap_intervals(
    recorded: Recorded,
    y: np.ndarray,
    report: dict[str, str],
    n: int = 200,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, dict[str, float | None]]:
    """Each metric of ``report`` with a percentile bootstrap confidence interval:
    ``{metric: {value, low, high}}``. The rows' recorded predictions are resampled ``n``
    times (nothing is predicted again); a resample on which a metric is not defined (one
    class only) does not count for it."""
    values = score(recorded, y, report)
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {name: [] for name in report}
    for _ in range(n):
        rows = rng.integers(0, len(y), len(y))
        scored, _ = score_each(recorded.take(rows), y[rows], report)
        for name, value in scored.items():
            if value is not None:
                samples[name].append(value)
    tail = (1 - level) / 2 * 100
    out: dict[str, dict[str, float | None]] = {}
    for name, value in values.items():
        low = high = None
        if samples[name]:
            low, high = (float(v) for v in np.percentile(samples[name], [tail, 100 - tail]))
        out[name] = {"value": value, "low": low, "high": high}
    return out
