"""Training end to end, in process: every shipped data set x every model family."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import (
    EMBEDDED_DATASETS,
    FAST,
    FILE_DATASETS,
    MODELS,
    compose_train,
    needs_shared_data,
)

from automl import load_model
from automl.data.dataset import load_dataset
from automl.services.training import train

# Small but real: 1 trial, 2 folds; forests and boosting capped so the matrix stays quick.
SMALL = FAST + [
    "model.classifier.n_estimators=60",
    "model.regressor.n_estimators=60",
]
SMALL_BY_MODEL = {
    "linear": FAST,
    "hist_gb": FAST + ["model.classifier.max_iter=60", "model.regressor.max_iter=60"],
}


def fit(tmp_path: Path, dataset: str, model: str, extra: list[str] | None = None) -> dict:
    cfg = compose_train(
        [f"dataset={dataset}", f"model={model}", *SMALL_BY_MODEL.get(model, SMALL)] + (extra or [])
    )
    return train(cfg, tmp_path)


SLOW_PAIRS = {("digits", "extra_trees"), ("digits", "rf")}  # the matrix's slowest: -m slow


def matrix(datasets: tuple[str, ...], band: int, slow: set[tuple[str, str]]) -> list:
    """Every (data set, model) pair; by default only a diagonal band of them runs (every
    model on several data sets, every data set with several models, each model on a
    classification and a regression set across the two matrices), the rest with -m slow."""
    return [
        pytest.param(
            d,
            m,
            id=f"{d}-{m}",
            marks=pytest.mark.slow if (i + j) % band or (d, m) in slow else (),
        )  # fmt: skip
        for i, d in enumerate(datasets)
        for j, m in enumerate(MODELS)
    ]


@pytest.mark.parametrize(("dataset", "model"), matrix(EMBEDDED_DATASETS, 3, SLOW_PAIRS))
def test_embedded_dataset_x_model(tmp_path, dataset, model):
    metrics = fit(tmp_path, dataset, model)
    assert (tmp_path / "model" / "manifest.json").is_file()
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    if dataset == "diabetes":
        assert {"rmse", "mae", "r2"} <= set(metrics) and metrics["r2"] > 0.2
    else:
        assert metrics["accuracy"] > 0.8


# adult (32,561 rows) with the slowest families runs only with the slow tests
SLOW_ON_ADULT = {("adult", m) for m in ("rf", "extra_trees", "linear", "hist_gb")}


@needs_shared_data
@pytest.mark.parametrize(("dataset", "model"), matrix(FILE_DATASETS, 2, SLOW_ON_ADULT))
def test_file_dataset_x_model(tmp_path, dataset, model):
    metrics = fit(tmp_path, dataset, model)
    if dataset in ("abalone", "winequality_red"):
        assert metrics["r2"] > 0.2
    else:
        assert metrics["auc"] > 0.75


def test_run_directory_holds_every_artifact(tmp_path):
    fit(tmp_path, "breast_cancer", "lgbm", ["evaluation.plots=true", "search.n_trials=3"])
    for name in (
        "metrics.json",
        "leaderboard.csv",
        "model/pipeline.joblib",
        "model/manifest.json",
        "plots/roc.png",
        "plots/confusion_matrix.png",
        "plots/feature_importance.png",
    ):
        assert (tmp_path / name).is_file(), name
    manifest = json.loads((tmp_path / "model" / "manifest.json").read_text())
    assert manifest["classes"] == ["benign", "malignant"]
    assert manifest["task"] == "binary" and len(manifest["features"]) == 30
    assert len(manifest["data_fingerprint"]) == 64 and "scikit-learn" in manifest["versions"]
    assert manifest["config"]["dataset"]["name"] == "breast_cancer"
    leaderboard = pd.read_csv(tmp_path / "leaderboard.csv")
    assert len(leaderboard) == 3 and leaderboard["value"].is_monotonic_decreasing


def test_regression_plots(tmp_path):
    fit(tmp_path, "diabetes", "linear", ["evaluation.plots=true"])
    assert (tmp_path / "plots" / "residuals.png").is_file()
    assert (tmp_path / "plots" / "feature_importance.png").is_file()


def test_saved_model_predicts_like_the_evaluated_one(tmp_path, train_config):
    metrics = fit(tmp_path, "wine", "xgb")
    model = load_model(tmp_path)
    cfg = train_config(["dataset=wine"])
    data = load_dataset(cfg.dataset, cfg.evaluation, cfg.seed)
    proba = model.predict_proba(data.test.drop(columns=data.target))
    y = pd.Categorical(data.test[data.target], categories=model.classes).codes
    log_loss = -np.mean(np.log(proba.to_numpy()[np.arange(len(y)), y]))
    assert log_loss == pytest.approx(metrics["log_loss"], rel=1e-6)


def test_same_seed_same_model(tmp_path):
    first = fit(tmp_path / "a", "breast_cancer", "lgbm", ["search.n_trials=3"])
    second = fit(tmp_path / "b", "breast_cancer", "lgbm", ["search.n_trials=3"])
    first.pop("train_seconds"), second.pop("train_seconds")
    assert first == second


@pytest.mark.parametrize("search", ["random", "grid"])
def test_other_samplers(tmp_path, search):
    extra = [f"search={search}", "search.n_trials=2"]
    if search == "grid":
        extra = ["search=grid", "search.sampler.points=2", "search.n_trials=null"]
    metrics = fit(tmp_path, "iris", "linear", extra)
    board = pd.read_csv(tmp_path / "leaderboard.csv")
    assert len(board) == 2 and metrics["accuracy"] > 0.8


@pytest.mark.parametrize("kind", ["sqlite", "journal", "postgresql"])
def test_study_resumes_from_storage(tmp_path, kind, request):
    # the second run continues the stored study; its leaderboard holds the trials it ran
    storage = {
        "sqlite": lambda: f"sqlite:///{tmp_path / 'study.db'}",
        "journal": lambda: tmp_path / "s.journal",
        "postgresql": lambda: request.getfixturevalue("postgres_url"),
    }[kind]()
    fit(tmp_path / "a", "iris", "linear", [f"search.storage='{storage}'", "search.n_trials=2"])
    fit(tmp_path / "b", "iris", "linear", [f"search.storage='{storage}'", "search.n_trials=2"])
    assert sorted(pd.read_csv(tmp_path / "b" / "leaderboard.csv")["number"]) == [2, 3]


def test_one_family_is_searched_in_this_process(tmp_path):
    # one trial at a time and no time budget: no worker process to start
    fit(tmp_path, "iris", "linear", ["search.n_trials=2"])
    board = pd.read_csv(tmp_path / "leaderboard.csv")
    assert set(board["worker"]) == {f"{socket.gethostname()}:{os.getpid()}"}
    assert set(board["family"]) == {"linear"}
    assert (tmp_path / "families.csv").is_file() and (tmp_path / "ensemble.csv").is_file()


@pytest.mark.parametrize("features", ["minimal", "none", "target_encoding", "robust"])
def test_feature_sets_train(tmp_path, features):
    metrics = fit(tmp_path, "breast_cancer", "lgbm", [f"features={features}"])
    assert metrics["auc"] > 0.9


@needs_shared_data
@pytest.mark.slow
def test_adult_lgbm_reaches_the_target_auc(tmp_path, train_config):
    cfg = train_config(["dataset=adult", "model=lgbm", "evaluation.plots=false"])
    assert train(cfg, tmp_path)["auc"] >= 0.925
