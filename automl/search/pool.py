"""Worker processes for search trials: they can be stopped mid-trial when the budget ends.

The training data goes to a file once; each worker loads it on its first trial and keeps
it. A trial fits the pipeline on every fold and returns its fold scores and out-of-fold
predictions (kept for ensembling). Workers are started with loky (fork + exec), so
OpenMP state of the parent (LightGBM, XGBoost) never leaks into them.
"""

from __future__ import annotations

import importlib
import os
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from loky import ProcessPoolExecutor
from sklearn.base import BaseEstimator, clone
from sklearn.metrics import get_scorer
from threadpoolctl import threadpool_limits

_LOADED: dict[str, Any] = {}  # in a worker: data file path -> TrialData


@dataclass
class TrialData:
    """What every trial needs: features, encoded target, sample weights and the folds."""

    X: Any
    y: np.ndarray
    weights: np.ndarray | None
    folds: list[tuple[np.ndarray, np.ndarray]]
    scoring: str
    classes: list[str] | None
    threads: int = 1  # per fit: model n_jobs, and the OpenMP/BLAS pools of the rest

    @property
    def oof_rows(self) -> np.ndarray:
        """The rows that get an out-of-fold prediction (every row under CV)."""
        return np.sort(np.concatenate([valid for _, valid in self.folds]))


@dataclass
class TrialOutcome:
    """One trial's fold scores, out-of-fold predictions and costs."""

    scores: list[float]
    oof: np.ndarray  # predictions for TrialData.oof_rows, in that order
    seconds: float
    # estimated time to fit once on all training rows, then predict them three times
    # (the reference profile and the evaluation predict about that many rows)
    refit_seconds: float

    @property
    def score(self) -> float:
        return float(np.mean(self.scores))


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


def fit(estimator: Any, X: Any, y: np.ndarray, weights: np.ndarray | None) -> Any:
    """Fit a pipeline, with per-row weights when given."""
    if weights is None:
        return estimator.fit(X, y)
    return estimator.fit(X, y, model__sample_weight=weights)


def run_trial(data_path: str, pipeline: Any) -> TrialOutcome:
    """Fit ``pipeline`` on each fold of the data at ``data_path``; runs in a worker."""
    if data_path not in _LOADED:
        _LOADED.clear()
        _LOADED[data_path] = joblib.load(data_path)
    data: TrialData = _LOADED[data_path]
    with threadpool_limits(limits=data.threads):  # e.g. HistGradientBoosting's OpenMP
        return fit_folds(data, pipeline)


def fit_folds(data: TrialData, pipeline: Any) -> TrialOutcome:
    """Fit ``pipeline`` on every fold; score and keep its out-of-fold predictions."""
    started = time.perf_counter()
    classification = data.classes is not None
    rows, oof, scores, fit_seconds = data.oof_rows, None, [], []
    for train, valid in data.folds:
        weights = None if data.weights is None else data.weights[train]
        tic = time.perf_counter()
        fitted = fit(clone(pipeline), data.X.iloc[train], data.y[train], weights)
        fitted_at = time.perf_counter()
        predicted = predictions(fitted, data.X.iloc[valid], classification)
        predict = (time.perf_counter() - fitted_at) * 3 * len(data.y) / len(valid)
        fit_seconds.append((fitted_at - tic) * len(data.y) / len(train) + predict)
        scores.append(score_predictions(data.scoring, data.y[valid], predicted, data.classes))
        if oof is None:
            oof = np.zeros((len(rows), *predicted.shape[1:]))
        oof[np.searchsorted(rows, valid)] = predicted
    return TrialOutcome(scores, oof, time.perf_counter() - started, float(np.max(fit_seconds)))


def refit_estimate(outcomes: list[TrialOutcome], workers: int) -> float:
    """Seconds to refit these trials on all rows, ``workers`` at a time."""
    seconds = [o.refit_seconds for o in outcomes]
    return max(max(seconds, default=0.0), sum(seconds) / workers)


def worker_name() -> str:
    """host:pid, recorded with each trial so distributed runs can be told apart."""
    return f"{socket.gethostname()}:{os.getpid()}"


class TrialPool:
    """``workers`` processes running trials on one copy of the data; stop kills them."""

    def __init__(self, workers: int, modules: list[str]) -> None:
        self.workers = workers
        self.folder = Path(tempfile.mkdtemp(prefix="automl-trials-"))
        self.data_path = str(self.folder / "data.joblib")
        self.executor = ProcessPoolExecutor(max_workers=workers)
        # workers import the model libraries while the parent loads the data
        for _ in range(workers):
            self.executor.submit(import_modules, modules)

    def share(self, data: TrialData) -> None:
        joblib.dump(data, self.data_path)

    def submit(self, pipeline: Any) -> Any:
        return self.executor.submit(run_trial, self.data_path, pipeline)

    def close(self, kill: bool = False) -> None:
        """Shut the workers down; ``kill`` stops trials still running."""
        self.executor.shutdown(wait=not kill, kill_workers=kill)
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> TrialPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close(kill=True)


def import_modules(modules: list[str]) -> None:
    for module in modules:
        importlib.import_module(module)
