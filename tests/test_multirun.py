"""A multirun sweep from the CLI: one directory per job and a summary."""

from __future__ import annotations

import os
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from helpers import run_cli


def test_sweep_writes_jobs_and_a_summary():
    result = run_cli(
        "automl",
        "-m",
        "dataset=wine,iris",
        "model=lgbm,rf",
        "experiment=smoke",
        "model.classifier.n_estimators=30",
    )
    assert result.returncode == 0, result.stderr
    [sweep] = Path(os.environ["AUTOML_OUTPUT_DIR"]).glob("sweeps/*/*")
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert jobs == ["0_wine_lgbm", "1_wine_rf", "2_iris_lgbm", "3_iris_rf"]
    summary = pd.read_csv(sweep / "summary.csv")
    assert len(summary) == 4 and (summary["accuracy"] > 0.8).all()
    assert summary["overrides"].str.contains("dataset=iris model=rf").any()


@pytest.mark.slow  # ~30 s; tests/test_auto.py runs three processes on one study by default
def test_a_joblib_sweep_is_three_processes_searching_one_shared_study(tmp_path, postgres_url):
    # three sampler seeds, one study: the launcher runs three search processes at once
    result = run_cli(
        "automl",
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=3",
        "model=auto",
        "model.families=[linear,lgbm]",
        "model.candidates.lgbm.classifier.n_estimators=30",
        "search.time_budget=null",
        "search.n_trials=2",
        f"search.storage='{postgres_url}'",
        "search.study_name=swept",
        f"search.artifacts={tmp_path / 'artifacts'}",
        "search.sampler.seed=1,2,3",
        "tracking=none",
        "registry.enabled=false",
        "evaluation.plots=false",
    )
    assert result.returncode == 0, result.stderr
    study = optuna.load_study(study_name="swept", storage=postgres_url)
    assert sorted(t.number for t in study.trials) == list(range(6))
    [sweep] = Path(os.environ["AUTOML_OUTPUT_DIR"]).glob("sweeps/*/*")
    boards = [
        pd.read_csv(job / "leaderboard.csv") for job in sorted(sweep.glob("*_breast_cancer_auto"))
    ]
    assert sorted(pd.concat(boards)["number"]) == list(range(6))  # each trial counted once
    assert len({b["worker"].iloc[0] for b in boards}) == 3


def test_the_slurm_launcher_config_composes():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install -e .[slurm]")
    result = run_cli(
        "automl", "hydra/launcher=slurm", "--cfg", "hydra", "--package", "hydra.launcher"
    )
    assert result.returncode == 0, result.stderr
    launcher = yaml.safe_load(result.stdout)
    assert launcher["_target_"].endswith("submitit_launcher.SlurmLauncher")
    assert launcher["timeout_min"] == 120 and launcher["cpus_per_task"] == 8
