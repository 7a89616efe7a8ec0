"""model=auto: several families under a time budget, ensembling, reproducibility, and a
study shared by two processes; class weights and a tuned threshold for any model."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from helpers import ROOT, compose_train, run_cli, run_dirs
from sklearn.metrics import f1_score, roc_auc_score

from automl.bundle.model import Model
from automl.data.dataset import load_dataset
from automl.errors import AutomlError
from automl.models.ensemble import WeightedEnsemble, select_ensemble, tune_threshold
from automl.models.fitting import score_predictions
from automl.search.pool import worker_name
from automl.search.portfolio import Allocator
from automl.services.training import train

QUIET = ["tracking=none", "evaluation.plots=false", "registry.enabled=false"]


def run_auto(tmp_path: Path, *overrides: str) -> tuple[dict, Path]:
    return run_model(tmp_path, "model=auto", *overrides)


def run_model(tmp_path: Path, *overrides: str) -> tuple[dict, Path]:
    cfg = compose_train([*QUIET, *overrides])
    run_dir = tmp_path / f"run{len(list(tmp_path.glob('run*')))}"
    return train(cfg, run_dir), run_dir


def test_budget_is_kept_and_a_trial_in_flight_is_stopped(tmp_path):
    # a random forest of 100,000 trees cannot finish: it must be stopped, not waited for
    budget = 10
    started = time.perf_counter()
    metrics, run_dir = run_auto(
        tmp_path,
        f"search.time_budget={budget}",
        "model.families=[linear,rf]",
        "model.candidates.rf.classifier.n_estimators=100000",
    )
    wall = time.perf_counter() - started
    assert metrics["train_seconds"] <= 1.1 * budget
    assert wall <= 1.1 * budget + 1  # + composing nothing: train() is the whole job
    trials = pd.read_csv(run_dir / "leaderboard.csv")
    rf = trials[trials["family"] == "rf"]
    assert list(rf["state"]) == ["time budget"]
    assert (trials[trials["family"] == "linear"]["state"] == "COMPLETE").sum() >= 2
    assert metrics["auc"] > 0.98


def test_a_single_family_under_a_budget_runs_in_a_worker_that_is_stopped(tmp_path, train_config):
    # the same loop for one family: a time budget makes its trial stoppable
    cfg = train_config(
        [*QUIET, "model=rf", "model.classifier.n_estimators=100000", "search.time_budget=4"]
    )
    started = time.perf_counter()
    with pytest.raises(AutomlError, match="no search trial finished within the time budget"):
        train(cfg, tmp_path / "run")
    assert time.perf_counter() - started <= 1.1 * 4 + 1
    assert not (tmp_path / "run" / "model").exists()


def test_ensemble_is_saved_and_predicts_like_the_evaluated_model(tmp_path, train_config):
    metrics, run_dir = run_auto(
        tmp_path,
        "search.n_trials=10",
        "search.time_budget=null",
        "model.families=[linear,lgbm,extra_trees]",
        "model.candidates.extra_trees.classifier.n_estimators=50",
    )
    families = pd.read_csv(run_dir / "families.csv")
    assert set(families["family"]) == {"linear", "lgbm", "extra_trees"}
    assert families["trials"].sum() == 10 and (families["trials"] >= 1).all()
    assert {"best_cv", "seconds", "failed_or_stopped"} <= set(families.columns)
    ensemble = pd.read_csv(run_dir / "ensemble.csv")
    assert ensemble["weight"].sum() == pytest.approx(1.0, abs=1e-3)
    manifest = json.loads((run_dir / "model" / "manifest.json").read_text())
    members = manifest["best_params"]["members"]
    assert [m["trial"] for m in members] == list(ensemble["trial"])

    model = Model.load(run_dir / "model")
    cfg = train_config(["model=auto"])
    data = load_dataset(cfg.dataset, cfg.evaluation, cfg.seed)
    proba = model.predict_proba(data.test[data.features])["malignant"]
    y = (data.test[data.target] == "malignant").to_numpy()
    assert roc_auc_score(y, proba) == pytest.approx(metrics["auc"], abs=1e-12)


def test_fixed_trials_and_seed_give_the_same_model(tmp_path, train_config):
    overrides = (
        "dataset=wine",
        "search.n_trials=6",
        "search.time_budget=null",
        "model.families=[lgbm,linear]",
        "model.candidates.lgbm.classifier.n_estimators=100",
    )
    first, run_a = run_auto(tmp_path, *overrides)
    second, run_b = run_auto(tmp_path, *overrides)
    first.pop("train_seconds"), second.pop("train_seconds")
    assert first == second
    columns = ["number", "family", "value"]
    a = pd.read_csv(run_a / "leaderboard.csv")[columns]
    b = pd.read_csv(run_b / "leaderboard.csv")[columns]
    pd.testing.assert_frame_equal(a, b)
    cfg = train_config(["dataset=wine"])
    data = load_dataset(cfg.dataset, cfg.evaluation, cfg.seed)
    X = data.test[data.features]
    np.testing.assert_array_equal(
        Model.load(run_a / "model").predict_proba(X), Model.load(run_b / "model").predict_proba(X)
    )


def shared_search(tmp_path: Path, url: str, name: str, *overrides: str) -> subprocess.Popen:
    """A ``model=auto`` process searching the study ``shared`` at ``url``; its run folder
    is ``tmp_path / name``."""
    command = [
        sys.executable,
        "-m",
        "automl",
        "model=auto",
        "model.families=[linear,lgbm]",
        "model.candidates.lgbm.classifier.n_estimators=50",
        "search.time_budget=null",
        "search.n_jobs=1",
        f"search.storage='{url}'",
        "search.study_name=shared",
        f"search.artifacts={tmp_path / 'artifacts'}",
        "search.ensemble.size=10",
        f"hydra.run.dir={tmp_path / name}",
        *QUIET,
        *overrides,
    ]
    return subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finished(run: subprocess.Popen, run_dir: Path | None = None) -> str:
    """The run's log file (or stderr), once the process ended well."""
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, out + err
    return "".join(p.read_text() for p in run_dir.glob("*.log")) if run_dir else err


@pytest.mark.slow  # the PostgreSQL three-process test is the default run's
def test_two_processes_share_one_journal_study(tmp_path):
    journal = tmp_path / "study.journal"
    runs = [
        shared_search(tmp_path, str(journal), f"process{i}", "search.n_trials=4") for i in (0, 1)
    ]
    for run in runs:
        finished(run)
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))
    )
    study = optuna.load_study(study_name="shared", storage=storage)
    numbers = [t.number for t in study.trials]
    assert sorted(numbers) == list(range(8))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    boards = [pd.read_csv(tmp_path / f"process{i}" / "leaderboard.csv") for i in range(2)]
    assert [len(b) for b in boards] == [4, 4]
    assert sorted(pd.concat(boards)["number"]) == numbers  # every trial counted once
    assert boards[0]["worker"].iloc[0] != boards[1]["worker"].iloc[0]


def test_three_processes_share_a_postgresql_study_and_each_others_predictions(
    tmp_path, postgres_url
):
    # two "machines" search at once, then a third joins with a single trial of its own
    for run in [
        shared_search(tmp_path, postgres_url, f"p{i}", "search.n_trials=3") for i in (0, 1)
    ]:
        finished(run)
    log = finished(
        shared_search(tmp_path, postgres_url, "p2", "search.n_trials=1"), tmp_path / "p2"
    )
    study = optuna.load_study(study_name="shared", storage=postgres_url)
    assert sorted(t.number for t in study.trials) == list(range(7))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    boards = [pd.read_csv(tmp_path / f"p{i}" / "leaderboard.csv") for i in range(3)]
    assert sorted(pd.concat(boards)["number"]) == list(range(7))  # every trial counted once
    # the third process's ensemble candidates are all seven trials, its own and the others'
    assert "shared study: 6 other trial(s) among the ensemble candidates" in log
    members = pd.read_csv(tmp_path / "p2" / "ensemble.csv")
    others = set(members["trial"]) - set(boards[2]["number"])
    assert others, members  # refit here from the other processes' parameters
    best = max(study.trials, key=lambda t: t.value)
    assert best.number in set(members["trial"])  # the study's best trial is in its ensemble
    assert len(list((tmp_path / "artifacts").iterdir())) == 7  # one file per trial


def test_a_process_that_dies_mid_trial_leaves_its_trial_failed(tmp_path, postgres_url):
    slow = [  # a trial that runs for minutes: 1M trees without early stopping
        "model.families=[lgbm]",
        "model.candidates.lgbm.classifier.n_estimators=1000000",
        "model.candidates.lgbm.early_stopping=null",
        "search.heartbeat=1",
        "search.n_trials=1",
    ]
    dying = shared_search(tmp_path, postgres_url, "dies", *slow)
    deadline = time.monotonic() + 120
    while True:
        assert time.monotonic() < deadline, "no trial started"
        try:
            study = optuna.load_study(study_name="shared", storage=postgres_url)
            running = optuna.trial.TrialState.RUNNING
            if any(t.state == running and "worker" in t.user_attrs for t in study.trials):
                break  # started: its first heartbeat follows its worker's name
        except KeyError:  # the study is not made yet
            pass
        time.sleep(0.2)
    time.sleep(1.5)  # beating (every second) in the middle of a trial of minutes
    dying.kill()
    dying.communicate()
    time.sleep(2.5)  # its last heartbeat is now older than the grace period (2 x 1 s)
    again = ["model.families=[lgbm]", "search.heartbeat=1", "search.n_trials=1"]
    finished(shared_search(tmp_path, postgres_url, "next", *again))
    states = [t.state for t in optuna.load_study(study_name="shared", storage=postgres_url).trials]
    assert states == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE]


def test_leaderboard_is_printed_at_the_end(tmp_path):
    result = run_cli(
        "automl",
        "dataset=iris",
        "model=auto",
        "model.families=[linear,hist_gb]",
        "search.n_trials=3",
        "search.time_budget=null",
        *QUIET,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout + result.stderr
    assert "families:" in out and "ensemble:" in out and "hist_gb" in out
    [run] = run_dirs()
    assert (run / "families.csv").is_file() and (run / "ensemble.csv").is_file()


@pytest.mark.slow
def test_sweep_jobs_run_in_parallel_with_the_joblib_launcher():
    result = run_cli(
        "automl",
        "-m",
        "hydra/launcher=joblib",
        "dataset=iris,wine",
        "model=auto",
        "model.families=[linear]",
        "search.n_trials=2",
        "search.time_budget=null",
        *QUIET,
    )
    assert result.returncode == 0, result.stderr
    [sweep] = Path(os.environ["AUTOML_OUTPUT_DIR"]).glob("sweeps/*/*")
    summary = pd.read_csv(sweep / "summary.csv")
    assert len(summary) == 2 and (summary["accuracy"] > 0.8).all()
    for job in ("0_iris_auto", "1_wine_auto"):
        assert (sweep / job / "ensemble.csv").is_file()


def test_a_bad_auto_setting_is_one_message_from_the_cli():
    result = run_cli("automl", "model=auto", "model.families=[lgbm,nope]", *QUIET)
    assert result.returncode == 1
    assert "model.families names ['nope']" in result.stdout + result.stderr
    assert not [p for p in run_dirs() if (p / "model").exists()]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("search=grid", "model=auto searches several families"),
        ("model.class_weight=heavy", "model.class_weight='heavy'"),
    ],
)
def test_bad_auto_settings_name_the_key(tmp_path, override, message):
    with pytest.raises(AutomlError, match=re.escape(message)):
        run_auto(tmp_path, "search.time_budget=20", override)
    assert not (tmp_path / "run0" / "model").exists()


@pytest.mark.parametrize(
    "dataset", ["breast_cancer", pytest.param("adult", marks=pytest.mark.slow)]
)
def test_balanced_weights_and_a_tuned_threshold(tmp_path, dataset, train_config):
    # balanced weights change the fit, and the threshold tuned for F1 is stored and used
    # for the labels everywhere (predict, the evaluated F1); a single family (the same
    # search loop as model=auto) takes both
    overrides = [
        f"dataset={dataset}",
        "model=lgbm",
        "search.n_trials=2",
        "evaluation.cv_folds=3",
        "model.classifier.learning_rate=0.1",
    ]
    plain, run_plain = run_model(tmp_path, *overrides)
    tuned, run_tuned = run_model(
        tmp_path, *overrides, "model.class_weight=balanced", "model.threshold=f1"
    )
    cfg = train_config([f"dataset={dataset}"])
    data = load_dataset(cfg.dataset, cfg.evaluation, cfg.seed)
    X = data.test[data.features]
    positive = data.classes[1]
    model = Model.load(run_tuned / "model")
    threshold = model.manifest["decision_threshold"]
    assert threshold == model.manifest["best_params"]["threshold"] and 0 < threshold < 1
    proba = model.predict_proba(X)[positive].to_numpy()
    labels = model.predict(X)
    np.testing.assert_array_equal(labels, np.where(proba >= threshold, positive, data.classes[0]))
    baseline = Model.load(run_plain / "model").predict_proba(X)[positive].to_numpy()
    assert not np.allclose(proba, baseline)  # the weights reached the fit
    y = (data.test[data.target] == positive).to_numpy()
    assert tuned["f1"] == pytest.approx(f1_score(y, labels == positive))
    assert tuned["f1"] >= plain["f1"] - 0.01


def test_ensemble_selection_never_scores_below_its_best_member():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    candidates = []
    for noise in (0.6, 0.7, 0.8):
        p = np.clip(0.35 * y + noise * rng.random(2000), 0, 1)
        candidates.append(np.c_[1 - p, p])
    weights, score = select_ensemble(candidates, y, "roc_auc", ["a", "b"], 20)
    best = max(score_predictions("roc_auc", y, c, ["a", "b"]) for c in candidates)
    assert weights.sum() == pytest.approx(1.0)
    assert np.count_nonzero(weights) >= 2 and score > best
    threshold, f1 = tune_threshold("f1", y, candidates[0], ["a", "b"])
    assert f1 >= score_predictions("f1", y, candidates[0], ["a", "b"])
    assert 0 < threshold < 1


def test_weighted_ensemble_averages_its_members():
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    members = [
        make_pipeline(StandardScaler(), LogisticRegression()),
        make_pipeline(DecisionTreeClassifier(max_depth=3, random_state=0)),
    ]
    ensemble = WeightedEnsemble(members, [0.75, 0.25]).fit(X, y)
    expected = 0.75 * members[0].fit(X, y).predict_proba(X) + 0.25 * members[1].fit(
        X, y
    ).predict_proba(X)
    np.testing.assert_allclose(ensemble.predict_proba(X), expected)
    assert ensemble.leader is ensemble.members_[0]


def frozen(family: str, state: str, **attrs) -> optuna.trial.FrozenTrial:
    """A finished or running trial of ``family`` as a shared study would hold it."""
    kind = optuna.trial.TrialState[state]
    return optuna.trial.create_trial(
        state=kind,
        value=0.9 if kind == optuna.trial.TrialState.COMPLETE else None,
        params={"family": family},
        distributions={"family": optuna.distributions.CategoricalDistribution(["linear", "lgbm"])},
        user_attrs={"seconds": 1.0, **attrs},
    )


def test_the_allocator_in_a_shared_study():
    allocator = Allocator(["linear", "lgbm"], 2.0, False, np.random.default_rng(0))
    inf = float("inf")
    # both families' first trials still run in other processes: another, not "nothing to do"
    elsewhere = [frozen(f, "RUNNING", worker="other:1") for f in ("linear", "lgbm")]
    assert allocator.choose(elsewhere, inf)
    # ... but never a second trial beside its own first one, still running
    mine = [frozen(f, "RUNNING", worker=worker_name()) for f in ("linear", "lgbm")]
    assert allocator.choose(mine, inf) is None
    # a trial whose process died (failed without an error) does not count: lgbm is untried
    assert allocator.choose([frozen("linear", "COMPLETE"), frozen("lgbm", "FAIL")], inf) == "lgbm"
    # a family whose trials failed with an error is given up
    failed = frozen("lgbm", "FAIL", error="ValueError: boom")
    assert allocator.choose([frozen("linear", "COMPLETE"), failed], inf) == "linear"
