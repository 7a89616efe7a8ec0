"""A multirun sweep from the CLI: one directory per job and a summary."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
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
