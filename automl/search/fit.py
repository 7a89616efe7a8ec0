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
from sklearn.pipeline import Pipeline
from sklearn.utils.class_weight import compute_sample_weight
from threadpoolctl import threadpool_limits

from automl.config import to_plain
from automl.data.splits import Fold, RowKeys, Splitter
from automl.errors import ConfigError
from automl.features import feature_space, feature_steps
from automl.models import build_model, model_param_prefix, model_space
from automl.models.ensemble import (
    ProbabilityCalibrator,
    calibrated,
    ensemble_of,
    fitted_ensemble,
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
        if model_cfg.target_transform is not None and task != "regression":
            continue  # a target transform is for regression: the family sits this one out
        model = build_model(model_cfg, task, cfg.seed)
        prefix = model_param_prefix(model)
        model_params = {prefix + k: v for k, v in model_space(model_cfg, task).items()}
        for label, features in feature_sets(name, model_cfg, cfg.features).items():
            steps = feature_steps(features, task=task)
            pipeline = Pipeline([*steps, ("model", clone(model))])
            space = model_params | feature_space(features)
            families[label] = make_family(label, pipeline, space, to_plain(model_cfg.portfolio))
    if not families:
        raise ConfigError(f"none of model.families takes part in a {task} task")
    return families


def split_rows(
    cfg: DictConfig, splitter: Splitter, keys: RowKeys, X: pd.DataFrame, y: np.ndarray, task: str
) -> list[Fold]:
    """CV folds (repeated for small data), or one holdout split when the data is large
    (for the time budget); drawn by ``splitter`` as the test rows were."""
    search = cfg.search
    budget = search.time_budget
    classification = task != "regression"
    # a booster fits one tree per class and round: many classes cost as many more cells
    per_class = max(1.0, len(np.unique(y)) / 2) if classification else 1.0
    cells = X.shape[0] * max(1, X.shape[1]) * per_class
    if len(y) > search.holdout_above or (
        budget is not None and cells > search.cv_cells_per_second * budget
    ):
        return [splitter.holdout(y, keys, search.holdout_fraction, classification)]
    repeats = cv_repeats(search, cells)
    if repeats > 1:
        log.info("small data: %d repeats of %d-fold CV", repeats, cfg.evaluation.cv_folds)
    folds = splitter.folds(y, keys, cfg.evaluation.cv_folds, classification, repeats)
    validated = len(np.unique(np.concatenate([valid for _, valid in folds])))
    if validated < len(y):
        log.info(
            "%d training row(s) are never validated (classes rarer than the folds, or a "
            "time split's oldest rows): they train in every fold",
            len(y) - validated,
        )
    return folds


def cv_repeats(search: DictConfig, cells: float) -> int:
    """``search.repeats``, or (auto) as many as fit: up to ``repeat_max`` while the
    rows x columns, ``repeat_headroom`` times over, fit the budget's CV capacity."""
    if search.repeats != "auto":
        return max(1, int(search.repeats))
    if search.time_budget is None:
        return 1
    fits = search.cv_cells_per_second * search.time_budget / (cells * search.repeat_headroom)
    return int(np.clip(np.floor(fits), 1, search.repeat_max))


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
    keys: RowKeys | None = None,
    sample_weight: np.ndarray | None = None,
) -> Fitted:
    """Search, ensemble and refit (or bag); ``deadline`` (``time.monotonic()``) bounds it
    all. ``keys`` say how rows split (groups, duplicates, times), ``sample_weight`` what
    each row counts."""
    scoring = cfg.evaluation.cv_metric[task]
    workers = pool.workers
    threads = max(1, cfg.n_jobs // workers)
    weights = combined(row_weights(cfg, task, y), sample_weight)
    calibrator = make_calibrator(cfg.model.calibration, task)  # checked before the search
    splitter = Splitter(cfg.evaluation.split, cfg.evaluation.stratify, cfg.seed)
    folds = split_rows(cfg, splitter, keys or RowKeys(), X, y, task)
    bagging = Bagging.of(cfg, len(y), len(folds))
    data = TrialData(X, y, weights, folds, scoring, classes, threads, bagging.possible)
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
    rows = data.oof_rows
    y_oof, w_oof = y[rows], None if weights is None else weights[rows]
    select_by = None if deadline is None else deadline - finish / 2
    members, member_weights, score = choose_members(
        cfg.search.ensemble.size, result.kept, y_oof, scoring, classes, select_by, w_oof
    )
    refit = refit_estimate([m.outcome for m in members], workers)
    overrun = deadline is not None and time.monotonic() + refit > deadline - finish
    bag = bagging.chosen(members, overrun)
    if overrun and not bag and len(members) > 1:
        log.info("ensemble: its refit (~%.1fs) would overrun the budget; the best trial", refit)
        members, member_weights = result.kept[:1], np.array([1.0])
    blend = sum(w * m.outcome.oof for m, w in zip(members, member_weights, strict=True))
    if calibrator is not None:
        blend = fit_calibrator(calibrator, y_oof, blend, classes)
    threshold = decision_threshold(cfg, y_oof, blend, classes)
    threshold_inside = threshold if calibrator is None else None  # a calibrated model's: its own
    if bag:
        estimator = bagged(members, member_weights, threshold_inside)
        estimator = calibrated(estimator, calibrator, threshold, prefit=True)
        log.info(
            "bagged: the %d fold models of %d member(s) are the model (no refit)",
            len(estimator_members(estimator)),
            len(members),
        )
    else:  # the refit runs like the trials (threads per fit, fits at once): their timings hold
        refit_started = time.monotonic()
        estimator = ensemble_of(
            [families[m.family].build(m.values) for m in members],
            [float(w) for w in member_weights],
            threshold_inside,
            n_jobs=workers,
        )
        estimator = calibrated(estimator, calibrator, threshold)
        with threadpool_limits(limits=threads):
            fit(estimator, X, y, weights)
        log.info("refit of %d member(s): %.1fs", len(members), time.monotonic() - refit_started)
    params, ensemble = describe(members, member_weights, threshold)
    params["calibration"] = None if calibrator is None else calibrator.method
    params["bagged"] = bag
    params["cv_repeats"] = len(folds) // max(1, cfg.evaluation.cv_folds) if len(folds) > 1 else 1
    tables = {"families": result.families, "ensemble": ensemble}
    # the model's CV score: the trial's (as in the leaderboard), or the ensemble's, both on
    # the pooled out-of-fold predictions
    cv_score = score if len(members) > 1 else members[0].outcome.score
    return Fitted(estimator, params, cv_score, result.trials, tables)


def combined(*weights: np.ndarray | None) -> np.ndarray | None:
    """The product of per-row weights (None: every row counts once)."""
    given = [w for w in weights if w is not None]
    return None if not given else np.prod(given, axis=0)


def decision_threshold(
    cfg: DictConfig, y: np.ndarray, proba: np.ndarray, classes: list[str] | None
) -> float | None:
    """The binary decision threshold: tuned out of fold for ``model.threshold``, or, for a
    rare positive class (under ``search.imbalance.share``), for ``search.imbalance.threshold``;
    None: the likelier class."""
    if classes is None or len(classes) != 2:
        return None
    metric = cfg.model.threshold
    imbalance = cfg.search.imbalance
    share = float(np.mean(y == 1))
    rare = min(share, 1 - share) < imbalance.share
    if metric is None and imbalance.threshold is not None and rare:
        metric = imbalance.threshold
        log.info("imbalanced: %.2f%% positive; threshold tuned for %s", 100 * share, metric)
    if metric is None:
        return None
    threshold, tuned = tune_threshold(metric, y, proba, classes)
    log.info("decision threshold %.4f: out-of-fold %s %.4f", threshold, metric, tuned)
    return threshold


@dataclass
class Bagging:
    """Whether the final model is the chosen members' fold models (AutoGluon's bagging:
    no refit) rather than the members refit on all rows. ``search.bagging``: true, false,
    or auto: bagged for small data (``search.bag_below_rows``), or when a refit would
    overrun the time budget (with one holdout split: the models fitted on its training
    rows). Never with a time split: a fold model has not seen the newest rows."""

    mode: Any
    small: bool
    possible: bool

    @classmethod
    def of(cls, cfg: DictConfig, rows: int, n_folds: int) -> Bagging:
        mode = cfg.search.bagging
        if mode not in ("auto", True, False):
            raise ConfigError(f"search.bagging={mode!r}: true, false or auto")
        small = rows <= cfg.search.bag_below_rows and n_folds > 1
        budget = cfg.search.time_budget is not None
        possible = cfg.evaluation.split != "time" and (
            mode is True or (mode == "auto" and (small or budget))
        )
        return cls(mode, small, possible)

    def chosen(self, members: list[Kept], overrun: bool) -> bool:
        """Bag these members: every one has fold models that saw every class."""
        if not self.possible or not (self.mode is True or self.small or overrun):
            return False
        for member in members:
            models = member.outcome.models
            if not models or any(getattr(m, "seen_classes_", None) is not None for m in models):
                return False
        return True


def bagged(members: list[Kept], weights: np.ndarray, threshold: float | None) -> Any:
    """The fitted ensemble of every member's fold models, each member's weight shared
    equally among its fold models."""
    models, shares = [], []
    for member, weight in zip(members, weights, strict=True):
        fold_models = member.outcome.models
        models += fold_models
        shares += [float(weight) / len(fold_models)] * len(fold_models)
    return fitted_ensemble(models, shares, threshold)


def estimator_members(estimator: Any) -> list[Any]:
    inner = getattr(estimator, "estimator_", estimator)
    return getattr(inner, "members_", [inner])


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
    row_weights: np.ndarray | None = None,
) -> tuple[list[Kept], np.ndarray, float]:
    """The ensemble's members and weights (``size`` selection rounds), or the best trial
    alone when the ensemble does not score better out of fold; with the out-of-fold score
    of the choice (rows counting ``row_weights``)."""
    best = kept[0].outcome.score
    if size < 1 or len(kept) < 2:
        return kept[:1], np.array([1.0]), best
    weights, score = select_ensemble(
        [k.outcome.oof for k in kept], y_oof, scoring, classes, size, deadline, row_weights
    )
    if score <= best or np.count_nonzero(weights) < 2:
        return kept[:1], np.array([1.0]), best
    chosen = np.flatnonzero(weights)
    log.info("ensemble of %d trials: out-of-fold %.5f vs best trial %.5f", len(chosen), score, best)
    return [kept[i] for i in chosen], weights[chosen], score
