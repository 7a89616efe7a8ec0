"""Scoring files with a trained model: CLI and Python API, unseen values, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import ADULT_COLUMNS, FAST, SHARED_DATA, compose_train, needs_shared_data, run_cli

from automl import load_model
from automl.errors import AutomlError, ContractError
from automl.services.training import train


@pytest.fixture(scope="module")
def adult_run(tmp_path_factory):
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    run = tmp_path_factory.mktemp("adult_run")
    train(compose_train(["dataset=adult", "model=lgbm", *FAST]), run)
    return run


def adult_test_rows(n: int) -> pd.DataFrame:
    """Raw rows of the official adult test file, as a user would have them (with header)."""
    frame = pd.read_csv(
        SHARED_DATA / "adult-test.csv", header=None, names=ADULT_COLUMNS, skipinitialspace=True
    )
    return frame.head(n).drop(columns="income")


@needs_shared_data
@pytest.mark.parametrize("suffix", ["csv", "parquet", "jsonl"])
def test_cli_scores_a_file(adult_run, tmp_path, suffix):
    rows = adult_test_rows(200)
    source = tmp_path / f"new.{suffix}"
    {
        "csv": lambda p: rows.to_csv(p, index=False),
        "parquet": rows.to_parquet,
        "jsonl": lambda p: rows.to_json(p, orient="records", lines=True),
    }[suffix](source)
    out = tmp_path / f"scored.{suffix}"
    result = run_cli("automl.predict", f"model={adult_run}", f"input={source}", f"output={out}")
    assert result.returncode == 0, result.stderr
    scored = (
        pd.read_csv(out)
        if suffix == "csv"
        else (pd.read_parquet(out) if suffix == "parquet" else pd.read_json(out, lines=True))
    )
    assert len(scored) == 200
    assert set(scored["prediction"]) <= {"<=50K", ">50K"}
    assert np.allclose(scored["proba_<=50K"] + scored["proba_>50K"], 1.0)
    assert "age" in scored.columns  # the input is kept next to the predictions
    expected = load_model(adult_run).predict_proba(rows)[">50K"].to_numpy()
    assert np.allclose(scored["proba_>50K"].to_numpy(), expected)


@needs_shared_data
def test_raw_values_are_cleaned_as_in_training(adult_run):
    rows = adult_test_rows(50)
    model = load_model(adult_run)
    padded = rows.assign(workclass=" " + rows["workclass"].astype(str))  # "?" and spaces
    assert np.allclose(model.predict_proba(padded), model.predict_proba(rows))


@needs_shared_data
def test_unseen_categories_and_missing_values_never_crash(adult_run):
    rows = adult_test_rows(20)
    rows.loc[0, "native-country"] = "Atlantis"
    rows.loc[1, "occupation"] = np.nan
    rows.loc[2, "workclass"] = "?"
    proba = load_model(adult_run).predict_proba(rows)
    assert proba.notna().all().all()


@needs_shared_data
def test_missing_column_fails_before_output(adult_run, tmp_path):
    source = tmp_path / "new.csv"
    adult_test_rows(10).drop(columns="age").to_csv(source, index=False)
    out = tmp_path / "scored.csv"
    result = run_cli("automl.predict", f"model={adult_run}", f"input={source}", f"output={out}")
    assert result.returncode != 0
    assert "missing required column(s): age" in result.stderr + result.stdout
    assert not out.exists()


@needs_shared_data
def test_contract_violation_names_column(adult_run):
    rows = adult_test_rows(10)
    rows.loc[4, "sex"] = "Unknown"
    with pytest.raises(ContractError, match="column 'sex'.*Unknown"):
        load_model(adult_run).predict(rows)


def test_not_a_bundle(tmp_path):
    with pytest.raises(AutomlError, match="no model bundle"):
        load_model(tmp_path)


def test_unknown_output_format(tmp_path):
    result = run_cli(
        "automl.predict",
        f"model={tmp_path}",
        f"input={tmp_path}/x.csv",
        f"output={tmp_path}/y.xlsx",
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr


def test_regression_predictions(tmp_path, train_config):
    train(train_config(["dataset=diabetes", "model=linear", *FAST]), tmp_path)
    from sklearn.datasets import load_diabetes

    rows = load_diabetes(as_frame=True).frame.drop(columns="target").head(5)
    model = load_model(tmp_path)
    values = model.predict(rows)
    assert values.dtype.kind == "f" and len(values) == 5
    with pytest.raises(AutomlError, match="classification"):
        model.predict_proba(rows)
