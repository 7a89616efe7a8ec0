"""Fitting a pipeline and scoring its predictions: shared by the search and the ensemble."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.metrics import get_scorer


class Replay(BaseEstimator):
    """Hands precomputed predictions to a scikit-learn scorer (one scoring code path)."""

    def __init__(
        self,
        predictions: np.ndarray,
        classes: list[str] | None = None,
        threshold: float | None = None,
    ) -> None:
        self.predictions = predictions
        self.classes = classes
        self.threshold = threshold
        if classes is not None:
            self.classes_ = np.arange(len(classes))

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.predictions

    def predict(self, X: Any) -> np.ndarray:
        if self.classes is None:
            return self.predictions
        if self.threshold is not None:
            return (self.predictions[:, 1] >= self.threshold).astype(int)
        return np.argmax(self.predictions, axis=1)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.estimator_type = "regressor" if self.classes is None else "classifier"
        return tags


def score_predictions(
    scoring: str,
    y: np.ndarray,
    predictions: np.ndarray,
    classes: list[str] | None,
    threshold: float | None = None,
) -> float:
    """The scorer ``scoring`` (greater is better) of ``predictions`` against ``y``;
    ``threshold`` turns binary probabilities into labels (None: the likelier class)."""
    dummy = np.zeros((len(y), 1))
    return float(get_scorer(scoring)(Replay(predictions, classes, threshold), dummy, y))


def predictions(estimator: Any, X: Any, classification: bool) -> np.ndarray:
    """Class probabilities (classification) or values (regression)."""
    return estimator.predict_proba(X) if classification else estimator.predict(X)


# what a quantile binner says of a column with fewer distinct values than bins: it merges
# the empty bins, which is what we want, once per column and fold otherwise
MERGED_BINS = "Bins whose width are too small"


def fit(estimator: Any, X: Any, y: np.ndarray, weights: np.ndarray | None) -> Any:
    """Fit a pipeline, with per-row weights when given."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=MERGED_BINS, category=UserWarning)
        if weights is None:
            return estimator.fit(X, y)
        return estimator.fit(X, y, model__sample_weight=weights)
