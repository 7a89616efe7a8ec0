"""Training's one search path: folds, the portfolio search, the ensemble, the refit.

Every model config takes it. The families taking part come from the model node: those
named in ``model.families`` among ``model.candidates`` (``model=auto``), or the node
itself when it has no candidates (``model=lgbm``: a portfolio of one); a family that
lists feature sets of its own (``model.candidates.<family>.features``) takes part once per
set, as ``<family>+<set>``, and the others use the run's ``features``. The flow: folds
(CV, or one holdout split for large data) -> the portfolio search -> greedy ensemble
selection on the kept out-of-fold predictions (``search.ensemble.size``; 0: the best
trial alone) -> optionally a probability calibration (``model.calibration``), then a tuned
decision threshold on the calibrated probabilities -> the chosen members refit on all
training rows (a calibrated model: wrapped in its calibrator). The ensemble replaces the
best single trial only when it scores better out of fold, and only when its refit fits in
the time left.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig
from sklearn.base import clone
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.utils.class_weight import compute_sample_weight
from threadpoolctl import threadpool_limits

from automl.errors import ConfigError
from automl.features import feature_space, feature_steps
from automl.models import build_model, model_param_prefix, model_space
from automl.models.ensemble import (
    ProbabilityCalibrator,
    calibrated,
    ensemble_of,
    select_ensemble,
    tune_threshold,
)
from automl.models.fitting import fit, score_predictions
from automl.search.pool import InlinePool, TrialData, TrialPool, open_pool, refit_estimate
from automl.search.portfolio import Family, Kept, make_family, run_portfolio
from automl.search.progress import SearchProgress
from automl.search.shared import SharedPredictions

log = logging.getLogger(__name__)


@dataclass
class Fitted:
    """A trained model and what its search found: parameters, CV score, trials, and
    tables of its own (per family, ensemble members)."""

    estimator: Any
    params: dict[str, Any]
    cv_score: float
    trials: pd.DataFrame
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)


def families_of(model: DictConfig) -> dict[str, DictConfig]:
    """The families taking part, by name, in ``model.families`` order (all candidates
    when it is empty); a model node without candidates is its own single family."""
    candidates = dict(model.candidates) or {model.name: model}
    names = list(model.families or candidates)
    unknown = [name for name in names if name not in candidates]
    if unknown:
        raise ConfigError(
            f"model.families names {unknown}, which are not in model.candidates "
            f"({', '.join(candidates)})"
        )
    return {name: candidates[name] for name in names}


def start_pool(cfg: DictConfig) -> InlinePool | TrialPool:
    """Where the trials will run, started early so workers import while data loads."""
    modules = {
        str(node._target_).rsplit(".", 1)[0]
        for family in families_of(cfg.model).values()
        for node in (family.classifier, family.regressor)
        if node is not None
    }
    stoppable = cfg.search.time_budget is not None
    return open_pool(max(1, cfg.search.n_jobs), stoppable, sorted(modules))


def feature_sets(name: str, family: DictConfig, features: DictConfig) -> dict[str, DictConfig]:
    """The feature sets a family is searched with, by portfolio family name: each of the
    family's own ``features`` as ``<family>+<set>``, or else the run's as ``<family>``."""
    own = family.get("features") or {}
    return {f"{name}+{key}": node for key, node in own.items()} or {name: features}


def make_families(cfg: DictConfig, task: str, threads: int) -> dict[str, Family]:
    """Each family's untrained pipeline (``threads`` per model fit) and search space: one
    per feature set the family is searched with."""
    cfg = cfg.copy()
    cfg.n_jobs = threads
    families = {}
    for name, model_cfg in families_of(cfg.model).items():
        model = build_model(model_cfg, task, cfg.seed)
        prefix = model_param_prefix(model)
        model_params = {prefix + k: v for k, v in model_space(model_cfg, task).items()}
        for label, features in feature_sets(name, model_cfg, cfg.features).items():
            steps = feature_steps(features, task=task)
            pipeline = Pipeline([*steps, ("model", clone(model))])
            space = model_params | feature_space(features)
            families[label] = make_family(label, pipeline, space)
    return families


def cv_folds(task: str, n_splits: int, seed: int) -> KFold | StratifiedKFold:
    """Stratified folds for classification, plain shuffled folds for regression."""
    kind = KFold if task == "regression" else StratifiedKFold
    return kind(n_splits=n_splits, shuffle=True, random_state=seed)


def split_rows(cfg: DictConfig, task: str, X: pd.DataFrame, y: np.ndarray) -> list[tuple]:
    """CV folds, or one holdout split when the data is large (for the time budget)."""
    rows = np.arange(len(y))
    search = cfg.search
    budget = search.time_budget
    large = budget is not None and X.shape[0] * X.shape[1] > search.cv_cells_per_second * budget
    if len(y) > search.holdout_above or large:
        stratify = None if task == "regression" else y
        train, valid = train_test_split(
            rows, test_size=search.holdout_fraction, random_state=cfg.seed, stratify=stratify
        )
        return [(np.sort(train), np.sort(valid))]
    return list(cv_folds(task, cfg.evaluation.cv_folds, cfg.seed).split(rows, y))


def row_weights(cfg: DictConfig, task: str, y: np.ndarray) -> np.ndarray | None:
    """Per-row weights for ``model.class_weight`` (None: every row counts once)."""
    choice = cfg.model.class_weight
    if choice is None:
        return None
    if choice != "balanced" or task == "regression":
        raise ConfigError(
            f"model.class_weight={choice!r}: only 'balanced' (classification) or null"
        )
    return compute_sample_weight("balanced", y)


def fit_search(
    cfg: DictConfig,
    pool: InlinePool | TrialPool,
    X: pd.DataFrame,
    y: np.ndarray,
    *,
    task: str,
    classes: list[str] | None,
    deadline: float | None,
) -> Fitted:
    """Search, ensemble and refit; ``deadline`` (``time.monotonic()``) bounds it all."""
    scoring = cfg.evaluation.cv_metric[task]
    workers = pool.workers
    threads = max(1, cfg.n_jobs // workers)
    weights = row_weights(cfg, task, y)
    calibrator = make_calibrator(cfg.model.calibration, task)  # checked before the search
    data = TrialData(X, y, weights, split_rows(cfg, task, X, y), scoring, classes, threads)
    pool.share(data)
    finish = (cfg.search.time_budget or 0) * cfg.search.finish_share
    families = make_families(cfg, task, threads)
    result = run_portfolio(
        families,
        pool,
        cfg=cfg.search,
        order=list(families),
        deadline=deadline,
        finish_seconds=finish,
        progress=SearchProgress(
            enabled=cfg.progress,
            every=cfg.progress_every,
            n_trials=cfg.search.n_trials,
            deadline=deadline,
        ),
        shared=SharedPredictions.of(cfg.search, data),
    )
    y_oof = y[data.oof_rows]
    select_by = None if deadline is None else deadline - finish / 2
    members, member_weights, score = choose_members(
        cfg.search.ensemble.size, result.kept, y_oof, scoring, classes, select_by
    )
    refit = refit_estimate([m.outcome for m in members], workers)
    if len(members) > 1 and deadline is not None and time.monotonic() + refit > deadline - finish:
        log.info("ensemble: its refit (~%.1fs) would overrun the budget; the best trial", refit)
        members, member_weights = result.kept[:1], np.array([1.0])
    blend = sum(w * m.outcome.oof for m, w in zip(members, member_weights, strict=True))
    if calibrator is not None:
        blend = fit_calibrator(calibrator, y_oof, blend, classes)
    threshold = None
    if cfg.model.threshold is not None and classes is not None and len(classes) == 2:
        threshold, tuned = tune_threshold(cfg.model.threshold, y_oof, blend, classes)
        log.info(
            "decision threshold %.4f: out-of-fold %s %.4f", threshold, cfg.model.threshold, tuned
        )
    # the refit runs like the trials (threads per fit, fits at once): their timings hold
    refit_started = time.monotonic()
    estimator = ensemble_of(
        [families[m.family].build(m.values) for m in members],
        [float(w) for w in member_weights],
        threshold if calibrator is None else None,  # a calibrated model's threshold: its own
        n_jobs=workers,
    )
    estimator = calibrated(estimator, calibrator, threshold)
    with threadpool_limits(limits=threads):
        fit(estimator, X, y, weights)
    log.info("refit of %d member(s): %.1fs", len(members), time.monotonic() - refit_started)
    params, ensemble = describe(members, member_weights, threshold)
    params["calibration"] = None if calibrator is None else calibrator.method
    tables = {"families": result.families, "ensemble": ensemble}
    # the model's CV score: its trial's mean fold score (as in the leaderboard), or the
    # ensemble's score on the pooled out-of-fold predictions
    cv_score = score if len(members) > 1 else members[0].outcome.score
    return Fitted(estimator, params, cv_score, result.trials, tables)


def make_calibrator(method: str | None, task: str) -> ProbabilityCalibrator | None:
    """The (unfitted) calibrator ``model.calibration`` asks for; None for regression."""
    if method is None:
        return None
    if task == "regression":
        log.info("model.calibration=%s: a regression model has no probabilities; none", method)
        return None
    return ProbabilityCalibrator(method)


def fit_calibrator(
    calibrator: ProbabilityCalibrator, y: np.ndarray, proba: np.ndarray, classes: list[str]
) -> np.ndarray:
    """Fit ``calibrator`` on the out-of-fold ``proba`` and return them calibrated."""
    after = calibrator.fit(y, proba).transform(proba)
    before_loss, after_loss = (
        -score_predictions("neg_log_loss", y, p, classes) for p in (proba, after)
    )
    log.info(
        "calibration (%s): out-of-fold log loss %.4f -> %.4f (on the rows it was fitted on)",
        calibrator.method,
        before_loss,
        after_loss,
    )
    return after


def describe(
    members: list[Kept], weights: np.ndarray, threshold: float | None
) -> tuple[dict[str, Any], pd.DataFrame]:
    """The model's parameters (for the manifest) and its members as a table."""
    params = {
        "members": [
            {"trial": m.number, "family": m.family, "weight": float(w), "params": m.values}
            for m, w in zip(members, weights, strict=True)
        ],
        "threshold": threshold,
    }
    table = pd.DataFrame(
        {
            "trial": [m.number for m in members],
            "family": [m.family for m in members],
            "weight": np.round(weights, 4),
            "cv": [m.outcome.score for m in members],
        }
    )
    return params, table


def choose_members(
    size: int,
    kept: list[Kept],
    y_oof: np.ndarray,
    scoring: str,
    classes: list[str] | None,
    deadline: float | None = None,
) -> tuple[list[Kept], np.ndarray, float]:
    """The ensemble's members and weights (``size`` selection rounds), or the best trial
    alone when the ensemble does not score better out of fold; with the out-of-fold score
    of the choice."""
    best = score_predictions(scoring, y_oof, kept[0].outcome.oof, classes)
    if size < 1 or len(kept) < 2:
        return kept[:1], np.array([1.0]), best
    weights, score = select_ensemble(
        [k.outcome.oof for k in kept], y_oof, scoring, classes, size, deadline
    )
    if score <= best or np.count_nonzero(weights) < 2:
        return kept[:1], np.array([1.0]), best
    chosen = np.flatnonzero(weights)
    log.info("ensemble of %d trials: out-of-fold %.5f vs best trial %.5f", len(chosen), score, best)
    return [kept[i] for i in chosen], weights[chosen], score
