"""The training job: data set -> features + model -> search -> refit -> evaluate -> bundle."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from automl.bundle.model import Model, fingerprint, library_versions
from automl.bundle.registry import Registry
from automl.config import build, to_plain
from automl.data.dataset import Dataset, load_dataset
from automl.evaluation import evaluate, save_plots
from automl.features import build_features
from automl.models import build_model, model_param_prefix, model_space
from automl.monitoring.profile import build_profile
from automl.search import run_search
from automl.search.auto import fit_auto, start_pool
from automl.search.study import Fitted

log = logging.getLogger(__name__)


def build_pipeline(cfg: DictConfig, task: str) -> Pipeline:
    """The untrained pipeline: feature ColumnTransformer, then the model family's estimator."""
    model = build_model(cfg.model, task, cfg.seed)
    return Pipeline([("features", build_features(cfg.features)), ("model", model)])


def train(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Run the whole training job and write its artifacts under ``run_dir``.

    Returns the metrics. The bundle (``model/``) and ``metrics.json`` are written last,
    so a failed run never looks complete. With ``model=auto`` the time budget bounds
    the whole job.
    """
    started = time.perf_counter()
    auto = bool(cfg.model.families)
    budget = cfg.search.time_budget if auto else None
    deadline = None if budget is None else time.monotonic() + budget
    pool = start_pool(cfg) if auto else None
    try:
        data = load_dataset(cfg.dataset, cfg.evaluation, cfg.seed)
        X, y = data.xy(data.train)
        if pool is None:
            fitted = fit_single(cfg, data, X, y)
        else:
            fitted = fit_auto(
                cfg, pool, X, y, task=data.task, classes=data.classes, deadline=deadline
            )
    finally:
        if pool is not None:
            pool.close(kill=True)
    final = fitted.estimator
    log.info("model fitted in %.1fs; evaluating and saving it", time.perf_counter() - started)
    X_test, y_test = data.xy(data.test)
    described = manifest(cfg, data, fitted.params) | {
        "decision_threshold": getattr(final, "threshold", None)
    }
    model = Model(final, described, reference_profile(cfg, data, final, X))
    metrics = evaluate(final, X_test, y_test, to_plain(cfg.evaluation.report[data.task]))
    scoring = cfg.evaluation.cv_metric[data.task]
    metrics = {"cv_" + scoring.removeprefix("neg_"): abs(fitted.cv_score), **metrics}
    model.manifest["metrics"] = metrics

    run_dir.mkdir(parents=True, exist_ok=True)
    fitted.trials.to_csv(run_dir / "leaderboard.csv", index=False)
    for name, table in fitted.tables.items():
        table.to_csv(run_dir / f"{name}.csv", index=False)
        log.info("%s:\n%s", name, table.to_string(index=False))
    if cfg.evaluation.plots:
        save_plots(final, data.classes, X_test, y_test, run_dir / "plots")
    metrics["train_seconds"] = round(time.perf_counter() - started, 2)
    model.manifest["metrics"] = metrics
    model.save(run_dir / "model")
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    tags = {
        "project": cfg.project,
        "dataset": data.name,
        "model_family": cfg.model.name,
        "task": data.task,
    }
    build(cfg.tracking).log_run(cfg, run_dir, metrics, fitted.trials, tags)
    if cfg.registry.enabled:
        registry = Registry(cfg.registry.uri, cfg.registry.store)
        version = registry.register(cfg.registry.name, run_dir / "model", model.manifest, run_dir)
        log.info("registered %s version %d (in %s)", cfg.registry.name, version, registry.uri)
    log.info(
        "test metrics (%s, %s): %s",
        data.name,
        cfg.model.name,
        ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()),
    )
    return metrics


def fit_single(cfg: DictConfig, data: Dataset, X: Any, y: Any) -> Fitted:
    """Search one family's space by CV, then refit the best parameters on all rows."""
    pipeline = build_pipeline(cfg, data.task)
    spaces = {
        model_param_prefix(pipeline[-1]): model_space(cfg.model, data.task),
        "features__": to_plain(cfg.features.space),
    }
    search = run_search(
        pipeline,
        {k: v for k, v in spaces.items() if v},
        X,
        y,
        task=data.task,
        scoring=cfg.evaluation.cv_metric[data.task],
        cfg=cfg.search,
        n_folds=cfg.evaluation.cv_folds,
        seed=cfg.seed,
    )
    final = clone(pipeline).set_params(**search.best_params).fit(X, y)
    return Fitted(final, search.best_params, search.best_score, search.trials)


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
        "contract": data.contract.to_dict(),
        "clean": data.clean,
        "best_params": params,
        "train_rows": len(data.train),
        "data_fingerprint": fingerprint(data.train),
        "versions": library_versions(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
