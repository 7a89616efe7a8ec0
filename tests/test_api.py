"""``automl.fit`` from a notebook: a DataFrame or a file, twice in one process, from a
thread, keywords and overrides as on the command line, and the same model as
``python -m automl`` with the same overrides."""

from __future__ import annotations

import logging
import os
import threading

import numpy as np
import pandas as pd
import pytest
from helpers import run_cli
from hydra.core.global_hydra import GlobalHydra
from sklearn.datasets import load_breast_cancer, load_wine

import automl
from automl.api import full_key, value
from automl.errors import AutomlError, ConfigError

SMALL = ["tracking=none", "evaluation.plots=false", "evaluation.cv_folds=2"]


def wine_frame() -> pd.DataFrame:
    frame = load_wine(as_frame=True).frame
    return frame.assign(target=frame["target"].map({0: "a", 1: "b", 2: "c"}))


def test_fit_a_frame_twice_leaves_no_state_behind(tmp_path):
    """Two fits in one process: two runs, each with its tables and log; Hydra's global
    state, the working directory and the logging setup are as before."""
    frame = load_breast_cancer(as_frame=True).frame
    package = logging.getLogger("automl")
    before = (os.getcwd(), package.level, list(package.handlers))
    runs = []
    for seed in (1, 2):
        trained = automl.fit(
            frame, target="target", name="cancer", conf_dir=tmp_path / "conf",
            overrides=[*SMALL, f"paths.output_dir={tmp_path / 'out'}"], n_trials=2, seed=seed,
        )  # fmt: skip
        runs.append(trained)
        assert not GlobalHydra.instance().is_initialized()
        assert (os.getcwd(), package.level, list(package.handlers)) == before
    first, second = runs
    assert (
        first.run_dir != second.run_dir and first.run_dir.parent.parent == tmp_path / "out" / "runs"
    )
    assert len(first.leaderboard()) == 2 and list(first.families()["family"]) == ["lgbm"]
    assert 0.9 < first.metrics["auc"] <= 1 and first.family == "lgbm"
    rows = frame.drop(columns="target").head(5)
    assert set(first.predict(rows)) <= {"0", "1"}
    assert first.predict_proba(rows).shape == (5, 2)
    log = (first.run_dir / "train.log").read_text()
    assert "cancer: binary task" in log and "search: 2 trials" in log
    assert (first.run_dir / ".hydra" / "config.yaml").is_file()
    assert "seed=1" in (first.run_dir / ".hydra" / "overrides.yaml").read_text()


def test_fit_a_file_from_threads_each_run_logs_only_its_own(tmp_path):
    path = tmp_path / "wine.csv"
    wine_frame().to_csv(path, index=False)
    results: dict[str, automl.Trained] = {}
    errors: list[BaseException] = []

    def job(model: str) -> None:
        try:
            results[model] = automl.fit(
                path, "target", name=f"wine_{model}", conf_dir=tmp_path / "conf",
                overrides=[*SMALL, f"paths.output_dir={tmp_path / 'out'}"],
                model=model, n_trials=1,
            )  # fmt: skip
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=job, args=(m,)) for m in ("linear", "lgbm")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    for model, trained in results.items():
        assert trained.metrics["accuracy"] > 0.8 and trained.family == model
        log = (trained.run_dir / "train.log").read_text()
        other = "lgbm" if model == "linear" else "linear"
        assert f"wine_{model}: multiclass task" in log and f"wine_{other}" not in log


def test_same_overrides_give_the_same_model_as_the_command_line(tmp_path):
    path = tmp_path / "wine.csv"
    wine_frame().to_csv(path, index=False)
    overrides = [*SMALL, "model=lgbm", "search.n_trials=3", "seed=5"]
    trained = automl.fit(
        path, "target", name="wine", conf_dir=tmp_path / "conf",
        overrides=[*overrides, f"paths.output_dir={tmp_path / 'api'}"],
    )  # fmt: skip
    done = run_cli(
        "automl", "--config-dir", str(tmp_path / "conf"), "dataset=wine", *overrides,
        f"paths.output_dir={tmp_path / 'cli'}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    cli = automl.load_model(next((tmp_path / "cli" / "runs").glob("*/*")))
    rows = wine_frame().drop(columns="target")
    np.testing.assert_allclose(
        trained.predict_proba(rows).to_numpy(), cli.predict_proba(rows).to_numpy(), rtol=1e-12
    )
    assert trained.model.manifest["best_params"] == cli.manifest["best_params"]


def test_keywords_name_groups_full_keys_and_unique_short_keys(train_config):
    cfg = train_config(["model=auto"])
    assert full_key(cfg, "time_budget") == "search.time_budget"
    assert full_key(cfg, "search.n_trials") == "search.n_trials" and full_key(cfg, "seed") == "seed"
    with pytest.raises(ConfigError, match="no config key is named 'time_budgett'"):
        full_key(cfg, "time_budgett")
    with pytest.raises(ConfigError, match="could be .*give the full key"):
        full_key(cfg, "n_estimators")
    assert value(None) == "null" and value(True) == "true" and value([1, "a"]) == "[1,a]"
    assert value("it's a path/x y") == "'it\\'s a path/x y'"


def test_bad_input_is_a_clear_error_and_writes_no_run(tmp_path):
    out = tmp_path / "out"
    common = {"conf_dir": tmp_path / "conf", "overrides": [f"paths.output_dir={out}"]}
    with pytest.raises(AutomlError, match="no rows"):
        automl.fit(wine_frame().head(0), "target", **common)
    with pytest.raises(AutomlError, match="target 'nope' is not a column"):
        automl.fit(wine_frame(), "nope", **common)
    with pytest.raises(ConfigError, match="cannot name a data set"):
        automl.fit(wine_frame(), "target", name="../up", **common)
    with pytest.raises(ConfigError, match="n_trial"):
        automl.fit(wine_frame(), "target", name="w", n_trial=3, **common)
    assert not out.exists() or not list(out.glob("runs/*/*/model"))
