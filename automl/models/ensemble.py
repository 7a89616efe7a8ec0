"""A weighted ensemble of fitted pipelines, chosen greedily on out-of-fold predictions.

Ensemble selection (Caruana et al., 2004; AutoGluon's final model): start empty, and at
each of ``size`` rounds add (with replacement) the candidate whose addition scores best;
weights are how often each was picked. The best-scoring prefix of the rounds is kept.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, clone

from automl.models.fitting import score_predictions


class WeightedEnsemble(BaseEstimator):
    """Averages its members' probabilities (or values) with ``weights``.

    Members are fitted ``n_jobs`` at a time, each with the threads it was configured
    with. For a binary classifier, ``threshold`` (on the positive class's probability) decides
    the label; None means the class with the highest probability.
    """

    def __init__(
        self,
        members: list[Any],
        weights: list[float],
        threshold: float | None = None,
        n_jobs: int = 1,
    ) -> None:
        self.members = members
        self.weights = weights
        self.threshold = threshold
        self.n_jobs = n_jobs

    def fit(self, X: Any, y: np.ndarray, **fit_params: Any):
        """Fit every member on all rows, ``n_jobs`` members at a time (threads);
        ``fit_params`` reach every member (e.g. ``model__sample_weight``)."""
        self.members_ = Parallel(n_jobs=self.n_jobs, prefer="threads")(
            delayed(clone(member).fit)(X, y, **fit_params) for member in self.members
        )
        self.classes_ = getattr(self.members_[0], "classes_", None)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        return self._blend(X, "predict_proba")

    def predict(self, X: Any) -> np.ndarray:
        if self.classes_ is None:
            return self._blend(X, "predict")
        proba = self.predict_proba(X)
        if self.threshold is not None:
            return self.classes_[(proba[:, 1] >= self.threshold).astype(int)]
        return self.classes_[np.argmax(proba, axis=1)]

    def _blend(self, X: Any, method: str) -> np.ndarray:
        total = sum(
            w * getattr(m, method)(X) for m, w in zip(self.members_, self.weights, strict=True)
        )
        return total / float(np.sum(self.weights))

    @property
    def leader(self) -> Any:
        """The member with the largest weight (its importances stand for the ensemble)."""
        return self.members_[int(np.argmax(self.weights))]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        inner = self.members[0].__sklearn_tags__()
        tags.estimator_type = inner.estimator_type
        tags.classifier_tags = inner.classifier_tags
        tags.regressor_tags = inner.regressor_tags
        return tags


def ensemble_of(
    members: list[Any], weights: list[float], threshold: float | None = None, n_jobs: int = 1
) -> Any:
    """The untrained model made of ``members`` with ``weights``. One member without a
    decision threshold is that member itself: a plain pipeline (the serving fast path
    compiles those)."""
    if len(members) == 1 and threshold is None:
        return members[0]
    return WeightedEnsemble(members, weights, threshold, n_jobs=n_jobs)


def select_ensemble(
    oofs: list[np.ndarray],
    y: np.ndarray,
    scoring: str,
    classes: list[str] | None,
    size: int,
    deadline: float | None = None,
) -> tuple[np.ndarray, float]:
    """Weights over ``oofs`` (candidates' out-of-fold predictions, best first) and the
    ensemble's score. Ties go to the better single candidate. Past ``deadline``
    (``time.monotonic()``) no further round starts."""
    picks: list[int] = []
    history: list[float] = []
    blend = np.zeros_like(oofs[0])
    for step in range(1, size + 1):
        if picks and deadline is not None and time.monotonic() > deadline:
            break
        scores = [score_predictions(scoring, y, blend + (p - blend) / step, classes) for p in oofs]
        best = int(np.argmax(scores))
        picks.append(best)
        history.append(scores[best])
        blend = blend + (oofs[best] - blend) / step
    keep = int(np.argmax(history)) + 1
    weights = np.bincount(picks[:keep], minlength=len(oofs)) / keep
    return weights, history[keep - 1]


def tune_threshold(
    scoring: str, y: np.ndarray, proba: np.ndarray, classes: list[str], points: int = 200
) -> tuple[float, float]:
    """The decision threshold on the positive probability that maximises ``scoring``,
    searched over ``points`` quantiles of ``proba``; returns (threshold, score)."""
    candidates = np.unique(np.quantile(proba[:, 1], np.linspace(0.01, 0.99, points)))
    scores = [score_predictions(scoring, y, proba, classes, threshold=t) for t in candidates]
    best = int(np.argmax(scores))
    return float(candidates[best]), scores[best]
