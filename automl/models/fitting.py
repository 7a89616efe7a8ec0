"""Fitting a pipeline and scoring its predictions: shared by the search and the ensemble.

A classifier fitted on rows that lack some classes (a CV fold of a rare class, a time
split) is fitted on its classes renumbered 0..m-1 (every library accepts that) and its
probabilities are spread back over all the classes, a class it never saw getting
``UNSEEN_CLASS`` (never 0: log loss stays finite).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from automl.scorers import scorer


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
    weights: np.ndarray | None = None,
) -> float:
    """The scorer ``scoring`` (greater is better) of ``predictions`` against ``y``, each
    row counting ``weights`` (None: once); ``threshold`` turns binary probabilities into
    labels (None: the likelier class)."""
    dummy = np.zeros((len(y), 1))
    found = scorer(scoring, None if classes is None else len(classes))
    replay = Replay(predictions, classes, threshold)
    if weights is None:
        return float(found(replay, dummy, y))
    return float(found(replay, dummy, y, sample_weight=weights))


UNSEEN_CLASS = 1e-4  # the probability of a class the model's rows did not have


def predictions(estimator: Any, X: Any, n_classes: int | None) -> np.ndarray:
    """Class probabilities over all ``n_classes`` (classification), or values (None)."""
    if n_classes is None:
        return estimator.predict(X)
    proba = estimator.predict_proba(X)
    seen = getattr(estimator, "seen_classes_", None)
    if seen is None or len(seen) == n_classes:
        return proba
    spread = np.full((len(proba), n_classes), UNSEEN_CLASS)
    spread[:, seen] = proba * (1 - UNSEEN_CLASS * (n_classes - len(seen)))
    return spread


# what a quantile binner says of a column with fewer distinct values than bins: it merges
# the empty bins, which is what we want, once per column and fold otherwise
MERGED_BINS = "Bins whose width are too small"


def fit(
    estimator: Any,
    X: Any,
    y: np.ndarray,
    weights: np.ndarray | None,
    n_classes: int | None = None,
) -> Any:
    """Fit a pipeline, with per-row weights when given. A classifier (``n_classes``) whose
    rows lack some classes is fitted on the classes it has, renumbered, and remembers
    them (``seen_classes_``) for :func:`predictions`."""
    seen = None
    if n_classes is not None:
        present = np.unique(y)
        if len(present) < n_classes:
            seen, y = present, np.searchsorted(present, y)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=MERGED_BINS, category=UserWarning)
        if weights is None:
            fitted = estimator.fit(X, y)
        else:
            fitted = estimator.fit(X, y, model__sample_weight=weights)
    fitted.seen_classes_ = seen
    return fitted
