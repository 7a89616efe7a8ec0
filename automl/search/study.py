"""Run an Optuna study: each trial samples the spaces and scores the pipeline by CV."""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline

from automl.config import build, to_plain
from automl.errors import AutomlError
from automl.search.space import contains, suggest

log = logging.getLogger(__name__)


@dataclass
class SearchResult:
    """The best parameters found, their CV score and every trial as a table."""

    best_params: dict[str, Any]
    best_score: float
    trials: pd.DataFrame
    seconds: float


@dataclass
class Fitted:
    """A trained model and what its search found: parameters, CV score, trials, and
    tables of its own (``model=auto``: per family, ensemble members)."""

    estimator: Any
    params: dict[str, Any]
    cv_score: float
    trials: pd.DataFrame
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)


def cv_folds(task: str, n_splits: int, seed: int) -> KFold | StratifiedKFold:
    """Stratified folds for classification, plain shuffled folds for regression."""
    kind = KFold if task == "regression" else StratifiedKFold
    return kind(n_splits=n_splits, shuffle=True, random_state=seed)


def open_storage(storage: Any) -> Any:
    """Optuna storage from config: a database URL, a journal file path, or a storage node."""
    if storage is None or "://" in str(storage):
        return storage
    if isinstance(storage, str):
        path = Path(storage).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    return build(storage)


def open_study(cfg: Any, sampler: optuna.samplers.BaseSampler) -> optuna.Study:
    """A new study, or the one kept in ``search.storage`` under ``study_name`` (resumed)."""
    return optuna.create_study(
        study_name=cfg.study_name,
        storage=open_storage(cfg.storage),
        sampler=sampler,
        direction="maximize",
        load_if_exists=cfg.storage is not None,
    )


def run_search(
    pipeline: Pipeline,
    spaces: dict[str, dict[str, Any]],
    X: pd.DataFrame,
    y: np.ndarray,
    *,
    task: str,
    scoring: str,
    cfg: Any,
    n_folds: int,
    seed: int,
) -> SearchResult:
    """Search ``spaces`` ({param prefix: space}) for the best CV ``scoring`` of ``pipeline``."""
    folds = cv_folds(task, n_folds, seed)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = build(cfg.sampler)
    if isinstance(sampler, functools.partial):  # a sampler that needs the space (grid)
        sampler = sampler({name: spec for space in spaces.values() for name, spec in space.items()})
    study = open_study(cfg, sampler)

    def objective(trial: optuna.Trial) -> float:
        params: dict[str, Any] = {}
        for prefix, space in spaces.items():
            params.update(suggest(trial, space, prefix))
        candidate = clone(pipeline).set_params(**params)
        started = time.perf_counter()
        scores = cross_val_score(candidate, X, y, cv=folds, scoring=scoring, error_score="raise")
        trial.set_user_attr("cv_std", float(np.std(scores)))
        trial.set_user_attr("fit_seconds", time.perf_counter() - started)
        return float(np.mean(scores))

    if cfg.start_with_defaults and not study.trials:
        defaults = pipeline.get_params()
        start = {
            name: defaults[prefix + name]
            for prefix, space in spaces.items()
            for name, spec in space.items()
            if prefix + name in defaults and contains(spec, defaults[prefix + name])
        }
        if start:
            study.enqueue_trial(start, skip_if_exists=True)

    started = time.perf_counter()
    n_trials = cfg.n_trials if any(spaces.values()) else 1
    study.optimize(
        objective,
        n_trials=n_trials,
        timeout=cfg.time_budget,
        n_jobs=cfg.n_jobs,
        catch=(ValueError, ArithmeticError),
    )
    seconds = time.perf_counter() - started
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
        reason = failed[-1].system_attrs.get("fail_reason", "") if failed else "no trial ran"
        raise AutomlError(f"every search trial failed; last reason: {reason}")
    best = study.best_trial
    params: dict[str, Any] = {}
    for prefix, space in spaces.items():
        params.update({prefix + k: v for k, v in best.params.items() if k in space})
    trials = study.trials_dataframe(
        attrs=("number", "value", "duration", "params", "user_attrs", "state")
    )
    trials = trials.sort_values("value", ascending=False, na_position="last")
    log.info(
        "search: %d trials in %.1fs, best CV %s = %.5f",
        len(done),
        seconds,
        scoring,
        best.value,
    )
    return SearchResult(to_plain(params), float(best.value), trials, seconds)
