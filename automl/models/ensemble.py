"""A weighted ensemble of fitted pipelines, chosen greedily on out-of-fold predictions.

Ensemble selection (Caruana et al., 2004; AutoGluon's final model): start empty, and at
each of ``size`` rounds add (with replacement) the candidate whose addition scores best;
weights are how often each was picked. The best-scoring prefix of the rounds is kept.

Also here: what decides a classifier's output after the blend, fitted on the same
out-of-fold predictions: a decision threshold, and a probability calibration (isotonic or
Platt's sigmoid) wrapped around the refit model (``Calibrated``).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, clone
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from automl.bundle.compiled import blend
from automl.errors import ConfigError
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
        return blend([getattr(m, method)(X) for m in self.members_], self.weights)

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


def fitted_ensemble(models: list[Any], weights: list[float], threshold: float | None) -> Any:
    """A ``WeightedEnsemble`` of models fitted already (bagging's fold models): it is
    not fitted again."""
    ensemble = WeightedEnsemble(models, weights, threshold)
    ensemble.members_ = list(models)
    ensemble.classes_ = getattr(models[0], "classes_", None)
    return ensemble


def select_ensemble(
    oofs: list[np.ndarray],
    y: np.ndarray,
    scoring: str,
    classes: list[str] | None,
    size: int,
    deadline: float | None = None,
    row_weights: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """Weights over ``oofs`` (candidates' out-of-fold predictions, best first) and the
    ensemble's score (rows counting ``row_weights``). Ties go to the better single
    candidate. Past ``deadline`` (``time.monotonic()``) no further round starts."""
    picks: list[int] = []
    history: list[float] = []
    blend = np.zeros_like(oofs[0])
    for step in range(1, size + 1):
        if picks and deadline is not None and time.monotonic() > deadline:
            break
        scores = [
            score_predictions(scoring, y, blend + (p - blend) / step, classes, weights=row_weights)
            for p in oofs
        ]
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


class PlattScaling:
    """Platt's sigmoid on a probability's logit, fitted with his smoothed targets
    ((positives + 1) / (positives + 2) and 1 / (negatives + 2)) so that separable scores
    do not make it a step. Probabilities are first kept ``0.5 / rows`` away from 0 and 1:
    a forest's many exact 0s and 1s would otherwise be outliers of the logit that flatten
    the fit."""

    def fit(self, p: np.ndarray, t: np.ndarray) -> PlattScaling:
        positives = int(t.sum())
        soft = np.where(t == 1, (positives + 1) / (positives + 2), 1 / (len(t) - positives + 2))
        self.eps_ = 0.5 / len(t)
        z = logit(p, self.eps_)
        # soft targets as two weighted rows per row: label 1 with weight t, label 0 with 1 - t
        X = np.concatenate([z, z])[:, None]
        y = np.concatenate([np.ones_like(z), np.zeros_like(z)])
        self.model_ = LogisticRegression(C=np.inf).fit(
            X, y, sample_weight=np.concatenate([soft, 1 - soft])
        )
        return self

    def predict(self, p: np.ndarray) -> np.ndarray:
        return self.model_.predict_proba(logit(p, self.eps_)[:, None])[:, 1]


def logit(p: np.ndarray, eps: float) -> np.ndarray:
    """log(p / (1 - p)), with ``p`` clipped to [eps, 1 - eps]."""
    p = np.clip(p, eps, 1 - eps)
    return np.log(p) - np.log1p(-p)


def isotonic() -> IsotonicRegression:
    return IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")


# model.calibration: how one class's probability is mapped
CALIBRATORS = {"isotonic": isotonic, "sigmoid": PlattScaling}


class ProbabilityCalibrator:
    """Maps a classifier's probabilities to calibrated ones: the positive class's (binary),
    or each class's one-vs-rest then renormalised (multiclass).

    Fitted on out-of-fold predictions, then kept as is: a plain object, not an estimator,
    so cloning the model that holds it copies it fitted. Calibrated probabilities stay at
    least ``0.5 / rows`` away from 0 and 1 (no certainty the calibration rows cannot show).
    """

    def __init__(self, method: str) -> None:
        if method not in CALIBRATORS:
            raise ConfigError(
                f"model.calibration={method!r}: one of {', '.join(CALIBRATORS)}, or null"
            )
        self.method = method

    def fit(self, y: np.ndarray, proba: np.ndarray) -> ProbabilityCalibrator:
        """Fit on labels ``y`` (class indices) and the probabilities ``proba`` for them."""
        columns = [1] if proba.shape[1] == 2 else range(proba.shape[1])
        self.maps_ = [
            CALIBRATORS[self.method]().fit(proba[:, j], (y == j).astype(float)) for j in columns
        ]
        self.floor_ = 0.5 / len(y)
        return self

    def transform(self, proba: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, rows summing to 1."""
        if proba.shape[1] == 2:
            positive = np.clip(self.maps_[0].predict(proba[:, 1]), self.floor_, 1 - self.floor_)
            return np.column_stack([1 - positive, positive])
        mapped = np.column_stack([m.predict(proba[:, j]) for j, m in enumerate(self.maps_)])
        mapped = np.clip(mapped, self.floor_, 1.0)
        return mapped / mapped.sum(axis=1, keepdims=True)


class Calibrated(BaseEstimator):
    """A classifier whose probabilities go through a fitted ``calibrator``; ``threshold``
    (on the calibrated positive probability) decides a binary label, None the likelier
    class. ``fit`` refits ``estimator`` only: the calibrator was fitted out of fold."""

    def __init__(
        self, estimator: Any, calibrator: ProbabilityCalibrator, threshold: float | None = None
    ) -> None:
        self.estimator = estimator
        self.calibrator = calibrator
        self.threshold = threshold

    def fit(self, X: Any, y: np.ndarray, **fit_params: Any) -> Calibrated:
        self.estimator_ = clone(self.estimator).fit(X, y, **fit_params)
        self.classes_ = self.estimator_.classes_
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.calibrator.transform(self.estimator_.predict_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        proba = self.predict_proba(X)
        if self.threshold is not None:
            return self.classes_[(proba[:, 1] >= self.threshold).astype(int)]
        return self.classes_[np.argmax(proba, axis=1)]

    @property
    def calibration(self) -> str:
        """The calibration method (for the manifest)."""
        return self.calibrator.method

    @property
    def leader(self) -> Any:
        """The pipeline whose importances stand for the model."""
        return getattr(self.estimator_, "leader", self.estimator_)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        inner = self.estimator.__sklearn_tags__()
        tags.estimator_type = inner.estimator_type
        tags.classifier_tags = inner.classifier_tags
        return tags


def calibrated(
    estimator: Any,
    calibrator: ProbabilityCalibrator | None,
    threshold: Any,
    prefit: bool = False,
) -> Any:
    """``estimator`` with ``calibrator`` (and the decision ``threshold``) applied, or itself
    when there is no calibrator; ``prefit``: ``estimator`` is fitted already."""
    if calibrator is None:
        return estimator
    model = Calibrated(estimator, calibrator, threshold)
    if prefit:
        model.estimator_, model.classes_ = estimator, estimator.classes_
    return model
