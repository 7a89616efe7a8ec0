"""Where search trials run: in this process, or in worker processes that can be stopped.

A trial fits the pipeline on every fold and returns its fold scores and out-of-fold
predictions (kept for ensembling). One trial at a time with no time budget runs in the
calling process (``InlinePool``: nothing to start). Trials run in parallel, or that a
budget may have to stop mid-trial, run in worker processes (``TrialPool``): the training
data goes to a file once, and each worker loads it on its first trial and keeps it.
Workers are started with loky (fork + exec), so OpenMP state of the parent (LightGBM,
XGBoost) never leaks into them.
"""

from __future__ import annotations

import importlib
import os
import shutil
import socket
import tempfile
import time
import warnings
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from loky import ProcessPoolExecutor
from sklearn.base import clone
from threadpoolctl import threadpool_limits

from automl.models.fitting import fit, predictions, score_predictions

_LOADED: dict[str, Any] = {}  # in a worker: data file path -> TrialData


@dataclass
class TrialData:
    """What every trial needs: features, encoded target, sample weights and the folds
    (repeated CV: the repeats' folds one after another)."""

    X: Any
    y: np.ndarray
    weights: np.ndarray | None
    folds: list[tuple[np.ndarray, np.ndarray]]
    scoring: str
    classes: list[str] | None
    threads: int = 1  # per fit: model n_jobs, and the OpenMP/BLAS pools of the rest
    keep_models: bool = False  # return the fold models (bagging: the final model)

    @property
    def oof_rows(self) -> np.ndarray:
        """The rows that get an out-of-fold prediction (every row under plain CV; not
        the rows that always train, nor a time split's oldest block)."""
        return np.unique(np.concatenate([valid for _, valid in self.folds]))

    @property
    def n_classes(self) -> int | None:
        return None if self.classes is None else len(self.classes)


@dataclass
class TrialOutcome:
    """One trial's score, fold scores, out-of-fold predictions and costs."""

    score: float  # on the pooled out-of-fold predictions (repeats averaged)
    scores: list[float]  # per fold, where the fold's rows define the metric
    oof: np.ndarray  # predictions for TrialData.oof_rows, in that order
    seconds: float
    # estimated time to fit once on all training rows, then predict them three times
    # (the reference profile and the evaluation predict about that many rows)
    refit_seconds: float
    models: list[Any] | None = None  # the fold models, with TrialData.keep_models


def run_trial(data_path: str, pipeline: Any) -> TrialOutcome:
    """Fit ``pipeline`` on each fold of the data at ``data_path``; runs in a worker."""
    if data_path not in _LOADED:
        _LOADED.clear()
        _LOADED[data_path] = joblib.load(data_path)
    return run_limited(_LOADED[data_path], pipeline)


def run_limited(data: TrialData, pipeline: Any) -> TrialOutcome:
    """``fit_folds`` with every thread pool capped at ``data.threads``."""
    with threadpool_limits(limits=data.threads):  # e.g. HistGradientBoosting's OpenMP
        return fit_folds(data, pipeline)


def fit_folds(data: TrialData, pipeline: Any) -> TrialOutcome:
    """Fit ``pipeline`` on every fold; score its pooled out-of-fold predictions (each
    row's repeats averaged) and keep them."""
    started = time.perf_counter()
    rows, total, counts = data.oof_rows, None, np.zeros(len(data.oof_rows))
    scores, fit_seconds, models = [], [], []
    for train, valid in data.folds:
        weights = None if data.weights is None else data.weights[train]
        tic = time.perf_counter()
        fitted = fit(clone(pipeline), data.X.iloc[train], data.y[train], weights, data.n_classes)
        fitted_at = time.perf_counter()
        predicted = predictions(fitted, data.X.iloc[valid], data.n_classes)
        predict = (time.perf_counter() - fitted_at) * 3 * len(data.y) / len(valid)
        fit_seconds.append((fitted_at - tic) * len(data.y) / len(train) + predict)
        scores += fold_score(data, valid, predicted)
        if total is None:
            total = np.zeros((len(rows), *predicted.shape[1:]))
        at = np.searchsorted(rows, valid)
        total[at] += predicted
        counts[at] += 1
        if data.keep_models:
            models.append(fitted)
    oof = total / counts.reshape(-1, *[1] * (total.ndim - 1))
    weights = None if data.weights is None else data.weights[rows]
    score = score_predictions(data.scoring, data.y[rows], oof, data.classes, weights=weights)
    seconds = time.perf_counter() - started
    return TrialOutcome(
        score, scores, oof, seconds, float(np.max(fit_seconds)), models if models else None
    )


def fold_score(data: TrialData, valid: np.ndarray, predicted: np.ndarray) -> list[float]:
    """The fold's score, or nothing when the metric is not defined on its rows (e.g. AUC
    on a fold with one class)."""
    weights = None if data.weights is None else data.weights[valid]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = score_predictions(
                data.scoring, data.y[valid], predicted, data.classes, weights=weights
            )
    except ValueError:
        return []
    return [value] if np.isfinite(value) else []


def refit_estimate(outcomes: list[TrialOutcome], workers: int) -> float:
    """Seconds to refit these trials on all rows, ``workers`` at a time."""
    seconds = [o.refit_seconds for o in outcomes]
    return max(max(seconds, default=0.0), sum(seconds) / workers)


def worker_name() -> str:
    """host:pid, recorded with each trial so distributed runs can be told apart."""
    return f"{socket.gethostname()}:{os.getpid()}"


class InlinePool:
    """Runs each trial in this process when it is submitted: one at a time, not stoppable,
    and nothing to start (the pool of a search with one worker and no time budget)."""

    workers = 1

    def __init__(self) -> None:
        self.data: TrialData | None = None

    def share(self, data: TrialData) -> None:
        self.data = data

    def submit(self, pipeline: Any) -> Future:
        """A future that is already done: the trial's outcome, or the error it raised."""
        future: Future = Future()
        try:
            future.set_result(run_limited(self.data, pipeline))
        except Exception as error:  # noqa: BLE001 - handed to the caller like a worker's
            future.set_exception(error)
        return future

    def close(self, kill: bool = False) -> None:
        self.data = None

    def __enter__(self) -> InlinePool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def open_pool(workers: int, stoppable: bool, modules: list[str]) -> InlinePool | TrialPool:
    """Where the trials run: worker processes when ``workers`` > 1 run at once or a trial
    may have to be ``stoppable`` (a time budget); otherwise this process. Workers import
    ``modules`` (the model libraries) as they start."""
    if workers > 1 or stoppable:
        return TrialPool(workers, modules)
    return InlinePool()


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
