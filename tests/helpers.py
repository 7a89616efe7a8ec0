"""Test helpers shared by the test modules: the real data folder, the shipped names,
composing the training config, running a command for real. (Fixtures are in conftest.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_module
from omegaconf import DictConfig, OmegaConf

from automl.config import register_schemas

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
FILE_DATASETS = ("adult", "abalone", "winequality_red", "horse_colic")
EMBEDDED_DATASETS = ("iris", "wine", "breast_cancer", "digits", "diabetes")
MODELS = ("lgbm", "xgb", "rf", "extra_trees", "linear", "hist_gb", "lgbm_default")
# Small runs; tracking is tested on its own (tests/test_tracking.py).
FAST = ["search.n_trials=1", "evaluation.cv_folds=2", "evaluation.plots=false", "tracking=none"]

# adult's columns, as the shipped data set declares them (the files have no header)
ADULT_COLUMNS = list(OmegaConf.load(ROOT / "conf" / "dataset" / "adult.yaml").source.reader.names)

needs_shared_data = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason=f"real data folder {SHARED_DATA} is absent"
)


def adult_test_rows(labels: bool = False) -> pd.DataFrame:
    """The official adult test file as a user has it (label without its trailing ".",
    or dropped)."""
    frame = pd.read_csv(
        SHARED_DATA / "adult-test.csv",
        header=None,
        names=ADULT_COLUMNS,
        skipinitialspace=True,
        comment="|",
    )
    if labels:
        return frame.assign(income=frame["income"].str.removesuffix("."))
    return frame.drop(columns="income")


def compose_train(overrides: list[str] | None = None, config_name: str = "train") -> DictConfig:
    """The composed training config, as `python -m automl <overrides>` would see it."""
    register_schemas()
    with initialize_config_module("automl.conf", version_base="1.3"):
        return compose(config_name, overrides=overrides or [])


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run ``python -m <args>`` in a subprocess, capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ),
    )


def run_dirs() -> list[Path]:
    """Run directories created so far under the current AUTOML_OUTPUT_DIR."""
    return sorted(Path(os.environ["AUTOML_OUTPUT_DIR"]).glob("runs/*/*"))
