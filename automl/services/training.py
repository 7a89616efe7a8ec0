"""The training job: data set -> features + model -> search -> refit -> evaluate -> bundle."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from sklearn.pipeline import Pipeline

from automl.bundle.model import Model, fingerprint, library_versions
from automl.bundle.registry import Registry
from automl.config import build, to_plain
from automl.data.dataset import Dataset, load_dataset
from automl.evaluation import evaluate, save_plots
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
        X, y = data.xy(data.train)
        fitted = fit_search(
            cfg, pool, X, y, task=data.task, classes=data.classes, deadline=deadline
        )
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
        "source_commit": git_commit(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": redact(OmegaConf.to_container(cfg, resolve=True)),  # no secrets in bundles
    }
