"""MLflow tracking against a real SQLite store; tracking=none; an unreachable server."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
from helpers import FAST, ROOT, compose_train
from omegaconf import OmegaConf

from automl.config import build
from automl.services.training import train
from automl.tracking import MAX_PARAM_VALUE, MlflowTracking, NoTracking

SMALL = ["model=linear", *FAST]


def client_for(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def head_commit() -> str | None:
    done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def parent_name(cfg) -> str:
    return f"{cfg.project}.breast_cancer"


def runs_of(client, experiment: str) -> tuple[object, list]:
    """The parent run and its children (each experiment here holds one parent)."""
    found = client.get_experiment_by_name(experiment)
    assert found is not None, experiment
    runs = client.search_runs([found.experiment_id], max_results=100)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1
    return parents[0], children


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """One small breast_cancer run (2 trials) tracked in a SQLite store."""
    tmp = tmp_path_factory.mktemp("tracked")
    uri = f"sqlite:///{tmp}/mlflow.db"
    cfg = compose_train(
        [
            "dataset=breast_cancer",
            *SMALL,
            "search.n_trials=2",
            "tracking=mlflow",
            f"tracking.uri={uri}",
            f"paths.output_dir={tmp / 'outputs'}",
        ]
    )
    run_dir = tmp / "run"
    metrics = train(cfg, run_dir)
    return cfg, uri, run_dir, metrics


def test_mlflow_is_the_default_and_stores_beside_the_outputs(tmp_path, monkeypatch, train_config):
    monkeypatch.setenv("AUTOML_OUTPUT_DIR", str(tmp_path / "outputs"))
    cfg = train_config()
    tracker = build(cfg.tracking)
    assert isinstance(tracker, MlflowTracking)
    assert tracker.uri == f"sqlite:///{(tmp_path / 'outputs' / 'mlflow.db').as_posix()}"
    assert tracker.experiment == f"{cfg.project}.{cfg.dataset.name}"
    assert tracker.log_best_trials == 5 and tracker.log_artifacts is True
    where = (tmp_path / "outputs" / "mlflow-artifacts").as_uri()
    assert tracker._artifact_location().startswith(where + "/")
    assert build(train_config(["tracking=none"]).tracking).__class__ is NoTracking


def test_a_relative_sqlite_path_is_taken_from_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tracker = MlflowTracking(uri="sqlite:///out/mlflow.db", experiment="e")
    assert tracker.uri == f"sqlite:///{(tmp_path / 'out' / 'mlflow.db').as_posix()}"
    server = MlflowTracking(uri="http://host:5000", experiment="e")
    assert server.uri == "http://host:5000" and server._artifact_location() is None


def test_run_is_logged_with_config_metrics_tags_and_artifacts(tracked):
    cfg, uri, run_dir, metrics = tracked
    client = client_for(uri)
    parent, _ = runs_of(client, f"{cfg.project}.breast_cancer")
    assert parent.info.status == "FINISHED"
    assert parent.info.run_name == run_dir.name

    params = parent.data.params
    assert params["dataset.name"] == "breast_cancer"
    assert params["model.name"] == "linear"
    assert params["search.n_trials"] == "2"
    assert params["evaluation.cv_folds"] == "2"
    assert params["tracking.uri"] == uri

    assert metrics["auc"] == pytest.approx(parent.data.metrics["auc"])
    assert set(metrics) == set(parent.data.metrics)

    recorded = json.loads((run_dir / "tracking.json").read_text())  # the run folder's link
    assert recorded == {"run_id": parent.info.run_id, "uri": uri, "experiment": parent_name(cfg)}

    tags = parent.data.tags
    assert tags["project"] == cfg.project
    assert tags["dataset"] == "breast_cancer"
    assert tags["model_family"] == "linear"
    assert tags["task"] == "binary"
    assert tags.get("git_commit") == head_commit()  # absent outside a git work tree

    top = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"model", "leaderboard.csv", "metrics.json"} <= top
    bundle = {a.path for a in client.list_artifacts(parent.info.run_id, "model")}
    assert "model/manifest.json" in bundle and "model/pipeline.joblib" in bundle
    # artifacts of a SQLite store stay beside it
    location = client.get_experiment(parent.info.experiment_id).artifact_location
    assert location.startswith((Path(uri.removeprefix("sqlite:///")).parent).as_uri())


def test_best_trials_are_nested_runs(tracked):
    cfg, uri, run_dir, _ = tracked
    client = client_for(uri)
    parent, children = runs_of(client, f"{cfg.project}.breast_cancer")
    trials = pd.read_csv(run_dir / "leaderboard.csv")
    assert len(children) == min(cfg.tracking.log_best_trials, len(trials)) == 2
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.info.status == "FINISHED"
        number = int(child.data.tags["trial_number"])
        row = trials[trials["number"] == number].iloc[0]
        assert child.data.metrics["cv_roc_auc"] == pytest.approx(row["value"])
        # a family's parameters are named <family>.<param> (one family: a portfolio of one)
        assert float(child.data.params["linear.C"]) == pytest.approx(row["params_linear.C"])


def test_only_the_best_trials_are_logged_and_long_values_are_clipped(tracked, tmp_path):
    cfg, _, run_dir, metrics = tracked
    uri = f"sqlite:///{tmp_path}/other.db"
    tracker = MlflowTracking(uri=uri, experiment="best", log_best_trials=3, log_artifacts=False)
    trials = pd.DataFrame(
        {
            "number": range(8),
            "value": [0.5, 0.9, 0.7, 0.95, 0.6, 0.99, 0.1, 0.8],
            "params_C": [0.1 * i for i in range(8)],
            "user_attrs_cv_std": [0.01] * 8,
            "state": ["COMPLETE"] * 5 + ["FAIL", "COMPLETE", "COMPLETE"],
        }
    )
    trials.loc[5, "value"] = float("nan")  # a failed trial has no value
    plain = OmegaConf.to_container(cfg, resolve=True)
    plain["note"] = "x" * (MAX_PARAM_VALUE + 500)
    plain["extra"] = {f"k{i}": i for i in range(150)}  # past one log_batch call's 100 params
    run_id = tracker.log_run(OmegaConf.create(plain), run_dir, metrics, trials, {"task": "binary"})
    assert run_id is not None

    client = client_for(uri)
    parent, children = runs_of(client, "best")
    assert parent.info.run_id == run_id
    assert sorted(int(c.data.tags["trial_number"]) for c in children) == [1, 3, 7]
    assert len(parent.data.params["note"]) == MAX_PARAM_VALUE
    assert all(parent.data.params[f"extra.k{i}"] == str(i) for i in range(150))
    assert client.list_artifacts(run_id) == []


def test_tracking_none_never_imports_mlflow(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        sys.path.insert(0, {str(ROOT / "tests")!r})
        from helpers import compose_train
        from automl.services.training import train
        cfg = compose_train(["dataset=iris", "model=linear", "search.n_trials=1",
                             "evaluation.cv_folds=2", "evaluation.plots=false",
                             "tracking=none", "paths.output_dir={tmp_path / "outputs"}"])
        train(cfg, Path({str(tmp_path / "run")!r}))
        print("MLFLOW", sorted(m for m in sys.modules if m.split(".")[0] == "mlflow"))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "MLFLOW []" in done.stdout, done.stdout
    assert (tmp_path / "run" / "metrics.json").is_file()


def test_an_unreachable_server_only_warns(tmp_path, monkeypatch, caplog, train_config):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    cfg = train_config(
        ["dataset=iris", *SMALL, "tracking=mlflow", "tracking.uri=http://127.0.0.1:9"]
    )
    with caplog.at_level(logging.WARNING, logger="automl.tracking"):
        metrics = train(cfg, tmp_path)
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    assert (tmp_path / "model" / "manifest.json").is_file()
    warnings = [r for r in caplog.records if r.name == "automl.tracking"]
    assert warnings and "http://127.0.0.1:9" in warnings[0].getMessage()


RACE = """
import sys, time
from pathlib import Path
import pandas as pd
from omegaconf import OmegaConf
import mlflow.store.tracking.sqlalchemy_store  # the slow imports, before the start line
from automl.tracking import MlflowTracking

uri, run_dir, ready, go = sys.argv[1:5]
Path(ready).touch()
while not Path(go).exists():
    time.sleep(0.01)
tracker = MlflowTracking(uri=uri, experiment="race", log_artifacts=False)
cfg = OmegaConf.create({"a": 1, "evaluation": {"cv_metric": {"binary": "roc_auc"}}})
print("RUN", tracker.log_run(cfg, Path(run_dir), {"m": 1.0}, pd.DataFrame(), {"task": "binary"}))
"""


def test_parallel_jobs_can_share_a_new_sqlite_store(tmp_path):
    """Jobs of a parallel sweep that all create the store at once all get logged."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    n = 2  # jobs
    go = tmp_path / "go"
    jobs = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, uri, str(tmp_path), str(tmp_path / f"ready{i}"), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(n)
    ]
    deadline = time.monotonic() + 240
    while not all((tmp_path / f"ready{i}").exists() for i in range(n)):
        assert time.monotonic() < deadline and all(j.poll() is None for j in jobs)
        time.sleep(0.05)
    go.touch()
    outputs = [job.communicate(timeout=240) for job in jobs]
    for out, err in outputs:
        assert "RUN " in out and "RUN None" not in out, err[-2000:]
    found = client_for(uri).get_experiment_by_name("race")
    assert len(client_for(uri).search_runs([found.experiment_id], max_results=10)) == n


def test_a_run_is_tracked_in_a_postgresql_store(tmp_path, postgres_url):
    cfg = compose_train(
        [
            "dataset=breast_cancer",
            *SMALL,
            "tracking=mlflow",
            f"tracking.uri='{postgres_url}'",
            f"tracking.artifact_location={(tmp_path / 'artifacts').as_uri()}",
            f"paths.output_dir={tmp_path / 'outputs'}",
        ]
    )
    metrics = train(cfg, tmp_path / "run")
    client = client_for(postgres_url)
    parent, children = runs_of(client, parent_name(cfg))
    assert parent.info.status == "FINISHED" and children
    assert metrics["auc"] == pytest.approx(parent.data.metrics["auc"])
    assert parent.data.params["dataset.name"] == "breast_cancer"
    bundle = {a.path for a in client.list_artifacts(parent.info.run_id, "model")}
    assert "model/manifest.json" in bundle
    assert (tmp_path / "artifacts").is_dir()
    link = (tmp_path / "run" / "tracking.json").read_text()
    assert json.loads(link)["run_id"] == parent.info.run_id
    assert ":automl_test@" not in link  # the password is not written
