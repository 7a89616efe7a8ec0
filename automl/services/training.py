"""The training job: data set -> features + model -> search -> refit -> evaluate -> bundle
(with its model card)."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from sklearn.pipeline import Pipeline

from automl.bundle.explain import background_sample, global_importance, importance_png
from automl.bundle.model import Model, fingerprint, library_versions
from automl.bundle.registry import Registry
from automl.config import build, to_plain
from automl.data.dataset import Dataset, load_dataset
from automl.evaluation import build_card, card_files, check_slices, record, save_plots, score
from automl.evaluation.metrics import Recorded
from automl.monitoring.profile import build_profile
from automl.redact import redact, redact_text
from automl.search import fit_search, start_pool
from automl.tracking import git_commit

log = logging.getLogger(__name__)


def train(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Run the whole training job and write its artifacts under ``run_dir``.

    Returns the metrics. The bundle (``model/``) and ``metrics.json`` are written last,
    so a failed run never looks complete. ``search.time_budget`` bounds the whole job.
    """
    started = time.perf_counter()
    budget = cfg.search.time_budget
    deadline = None if budget is None else time.monotonic() + budget
    with start_pool(cfg) as pool:  # worker processes import while the data loads
        data = load_dataset(cfg.dataset, cfg.evaluation, cfg.seed)
        check_slices(list(cfg.evaluation.slices), list(data.test.columns))
        X, y = data.xy(data.train)
        fitted = fit_search(
            cfg,
            pool,
            X,
            y,
            task=data.task,
            classes=data.classes,
            deadline=deadline,
            keys=data.keys(data.train),
            sample_weight=data.weights(data.train),
        )
    final = fitted.estimator
    log.info("model fitted in %.1fs; evaluating and saving it", time.perf_counter() - started)
    X_test, y_test = data.xy(data.test)
    described = manifest(cfg, data, fitted.params) | {
        "decision_threshold": getattr(final, "threshold", None),
        "calibration": getattr(final, "calibration", None),
    }
    background = background_sample(X, cfg.evaluation.background_rows, cfg.seed)
    model = Model(final, described, reference_profile(cfg, data, final, X), background)
    predicting = time.monotonic()
    recorded = record(final, X_test)  # the test rows predicted once: metrics and model card
    predict_seconds = time.monotonic() - predicting
    report = to_plain(cfg.evaluation.report[data.task])
    metrics = score(recorded, y_test, report, data.weights(data.test))
    scoring = cfg.evaluation.cv_metric[data.task]
    metrics = {"cv_" + scoring.removeprefix("neg_"): abs(fitted.cv_score), **metrics}
    model.manifest["metrics"] = metrics

    run_dir.mkdir(parents=True, exist_ok=True)
    fitted.trials.to_csv(run_dir / "leaderboard.csv", index=False)
    for name, table in fitted.tables.items():
        table.to_csv(run_dir / f"{name}.csv", index=False)
        log.info("%s:\n%s", name, table.to_string(index=False))
    importance = None
    shuffles = IMPORTANCE_REPEATS * X_test.shape[1] * predict_seconds  # its cost, about
    if fits_budget(deadline, shuffles, "permutation importance"):
        importance = held_out_importance(cfg, final, X_test, y_test, scoring)
    files = {} if importance is None else importance_files(importance, scoring)
    if cfg.evaluation.plots:
        save_plots(final, data.classes, X_test, y_test, run_dir / "plots")
        if importance is not None:
            (run_dir / "plots" / "importance_permutation.png").write_bytes(files[IMPORTANCE_PNG])
    resamples = cfg.evaluation.bootstrap
    report_size = len(cfg.evaluation.report[data.task])
    if not fits_budget(deadline, resamples * report_size * SCORER_SECONDS, "bootstrap"):
        resamples = 0
    files |= write_card(cfg, data, model, recorded, y_test, run_dir, importance, resamples)
    metrics["train_seconds"] = round(time.perf_counter() - started, 2)
    model.manifest["metrics"] = metrics
    model.save(run_dir / "model", extra_files=files)
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    tags = {
        "project": cfg.project,
        "dataset": data.name,
        "model_family": cfg.model.name,
        "task": data.task,
    }
    tracker = build(cfg.tracking)
    tracked = tracker.log_run(cfg, run_dir, metrics, fitted.trials, tags)
    if tracked is not None:  # where the tracker keeps its copy (the dashboard shows it)
        where = {
            "run_id": tracked,
            "uri": redact_text(str(getattr(tracker, "uri", ""))),
            "experiment": getattr(tracker, "experiment", None),
        }
        (run_dir / "tracking.json").write_text(json.dumps(where))
    if cfg.registry.enabled:
        registry = Registry.at(cfg.registry)
        version = registry.register(cfg.registry.name, run_dir / "model", model.manifest, run_dir)
        log.info("registered %s version %d (in %s)", cfg.registry.name, version, registry.uri)
    log.info(
        "test metrics (%s, %s): %s",
        data.name,
        cfg.model.name,
        ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()),
    )
    return metrics


IMPORTANCE_PNG = "importance.png"


IMPORTANCE_REPEATS = 5  # shuffles per column (global_importance's n_repeats)
SCORER_SECONDS = 0.003  # about one scikit-learn scorer call on recorded predictions


def fits_budget(deadline: float | None, seconds: float, what: str) -> bool:
    """Whether an optional step of about ``seconds`` fits before the job's ``deadline``
    (always without one); a step that does not is left out, and the log says so."""
    if deadline is None or time.monotonic() + seconds <= deadline:
        return True
    log.info("%s left out: about %.1fs would overrun search.time_budget", what, seconds)
    return False


def held_out_importance(
    cfg: DictConfig, final: Any, X_test: pd.DataFrame, y_test: np.ndarray, scoring: str
) -> pd.DataFrame | None:
    """Each input column's permutation importance on (up to ``evaluation.importance_rows``
    of) the test rows, with the model's own; None when switched off (0 rows)."""
    rows = cfg.evaluation.importance_rows
    if rows < 1:
        return None
    if len(X_test) > rows:
        kept = np.random.default_rng(cfg.seed).choice(len(X_test), rows, replace=False)
        X_test, y_test = X_test.iloc[np.sort(kept)], y_test[np.sort(kept)]
    started = time.perf_counter()
    table = global_importance(final, X_test, y_test, scoring, cfg.seed, IMPORTANCE_REPEATS)
    log.info(
        "permutation importance on %d test rows: %.1fs", len(X_test), time.perf_counter() - started
    )
    return table


def importance_files(table: pd.DataFrame, scoring: str) -> dict[str, bytes | str]:
    """The importance table and its chart, as bundle files."""
    return {
        "importance.csv": table.to_csv(index=False),
        IMPORTANCE_PNG: importance_png(table, metric=scoring),
    }


def write_card(
    cfg: DictConfig,
    data: Dataset,
    model: Model,
    recorded: Recorded,
    y_test: np.ndarray,
    run_dir: Path,
    importance: pd.DataFrame | None = None,
    bootstrap: int = 0,
) -> dict[str, bytes | str]:
    """The model card's files, for the bundle to write with the model (``model_card.md``,
    ``model_card.json``, ``calibration.png``): the test rows' recorded predictions with
    bootstrap intervals, by ``evaluation.slices``, calibration; ``importance`` the
    permutation importance table (None: not computed)."""
    card = build_card(
        model.manifest,
        recorded=recorded,
        y=y_test,
        test=data.test,
        run=run_dir.name,
        slices=list(cfg.evaluation.slices),
        importance=importance,
        bootstrap=bootstrap,
        seed=cfg.seed,
    )
    return card_files(card)


def reference_profile(cfg: DictConfig, data: Dataset, pipeline: Pipeline, X: Any) -> dict:
    """The training data's profile for drift monitoring, with the model's predictions."""
    predictions = pipeline.predict(X) if data.classes is None else pipeline.predict_proba(X)
    settings = cfg.monitoring.profile
    return build_profile(X, predictions, data.classes, settings.bins, settings.top_categories)


def manifest(cfg: DictConfig, data: Dataset, params: dict[str, Any]) -> dict[str, Any]:
    """What the bundle says about itself."""
    return {
        "project": cfg.project,
        "dataset": data.name,
        "model_family": cfg.model.name,
        "task": data.task,
        "target": data.target,
        "classes": data.classes,
        "features": data.features,
        "contract": data.input_contract.to_dict(),  # less the group and weight columns
        "clean": data.clean,
        "best_params": params,
        "train_rows": len(data.train),
        "test_rows": len(data.test),
        "data_fingerprint": fingerprint(data.train),
        "versions": library_versions(),
        "source_commit": git_commit(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": redact(OmegaConf.to_container(cfg, resolve=True)),  # no secrets in bundles
    }
