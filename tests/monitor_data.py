"""Shared by the monitoring tests: one adult model per test process, adult's test file."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from helpers import ADULT_COLUMNS, FAST, SHARED_DATA, compose_train

from automl.bundle.model import Model, load_model


@functools.cache
def adult_run() -> Path:
    """A run directory with an adult LightGBM bundle, trained once per test process."""
    from automl.services.training import train

    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    run = Path(tempfile.mkdtemp(prefix="automl-monitor-adult-"))
    train(compose_train(["dataset=adult", "model=lgbm", "registry.enabled=false", *FAST]), run)
    return run


@functools.cache
def adult_model() -> Model:
    return load_model(adult_run())


@functools.cache
def adult_test() -> pd.DataFrame:
    """The official adult test file as a user would have it (header added, raw values)."""
    return pd.read_csv(
        SHARED_DATA / "adult-test.csv",
        header=None,
        names=ADULT_COLUMNS,
        skipinitialspace=True,
        comment="|",
    )


def scored(raw: pd.DataFrame) -> pd.DataFrame:
    """Raw rows cleaned, checked and scored: the window a monitor sees."""
    model = adult_model()
    features = model.prepare(raw)
    return pd.concat([features, model.score_valid(features)], axis=1)
