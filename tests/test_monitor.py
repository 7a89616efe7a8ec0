"""The drift engine on real data: adult's test file against the reference profile of a model
trained on adult's training file (drift tests, signals, no false alarms, edge cases)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from helpers import needs_shared_data
from monitor_data import adult_model, adult_test, scored

from automl.errors import ConfigError
from automl.monitoring.drift import check_drift, check_performance, load_monitoring, select_window
from automl.monitoring.profile import build_profile
from automl.services.monitoring import verdict

pytestmark = needs_shared_data
SEEDS = range(10)


@pytest.fixture(scope="module")
def cfg():
    return load_monitoring()


def sample(n: int, seed: int) -> pd.DataFrame:
    return adult_test().sample(n, random_state=seed)


def strict_json(report: dict) -> dict:
    """The report through JSON with NaN and infinity refused."""
    return json.loads(json.dumps(report, allow_nan=False))


# --------------------------------------------------------------------------- no false alarm


@pytest.mark.parametrize("seed", SEEDS)
def test_no_false_alarm_on_fresh_data(cfg, seed):
    """Random 2,000-row windows of the official test file (never seen in training): no
    column, no prediction and no performance signal at default thresholds."""
    raw = sample(2000, seed)
    window = scored(raw).assign(label=raw["income"].str.rstrip("."))
    report = strict_json(check_drift(adult_model(), window, cfg))
    assert report["status"] == "ok", report["drifted_columns"]
    assert report["signals"] == []
    assert report["columns"]["age"]["test"]["method"] == "wasserstein"
    assert report["columns"]["education"]["test"]["method"] == "jensen_shannon"
    model = adult_model()
    perf = check_performance(
        model.manifest["metrics"], window, model.task, model.classes, cfg.performance
    )
    assert perf["status"] == "ok" and set(perf["metrics"]) == {"auc", "accuracy"}


def test_small_windows_never_drift(cfg):
    """500-row windows use KS and chi-square (p < 0.05 per column): now and then one column
    is flagged by chance, but the data set never drifts and few columns do."""
    shares = []
    for seed in SEEDS:
        report = check_drift(adult_model(), scored(sample(500, seed)), cfg)
        assert report["columns"]["age"]["test"]["method"] == "ks"
        assert report["status"] != "drift"
        shares.append(report["share_drifted"])
    assert np.mean(shares) < 0.1


# --------------------------------------------------------------------------- real drift


def test_one_education_level(cfg):
    raw = adult_test()[adult_test()["education"] == "Bachelors"]
    report = check_drift(adult_model(), scored(raw), cfg)
    assert {"education", "education-num"} <= set(report["drifted_columns"])
    assert report["columns"]["education"]["reasons"] == ["test"]
    assert report["prediction"]["drifted"]  # more of them earn >50K
    assert "prediction" in report["signals"]
    assert report["status"] in ("warning", "drift")


@pytest.mark.parametrize(
    ("column", "rows"),
    [
        ("age", 500),
        ("age", 3000),
        ("hours-per-week", 3000),
        pytest.param("hours-per-week", 500, marks=pytest.mark.slow),
        pytest.param("education-num", 500, marks=pytest.mark.slow),
        ("education-num", 3000),
    ],
)
def test_numeric_shift_of_half_a_std(cfg, column, rows):
    window = scored(sample(rows, 3))
    std = adult_model().profile["columns"][column]["std"]
    window[column] = window[column] + 0.5 * std
    report = check_drift(adult_model(), window, cfg)
    assert report["drifted_columns"] == [column]
    assert report["status"] == "warning"
    assert report["columns"][column]["test"]["method"] == ("ks" if rows <= 1000 else "wasserstein")


@pytest.mark.parametrize("rows", [500, 3000])
def test_new_category_in_a_fifth_of_rows(cfg, rows):
    window = scored(sample(rows, 4))
    hit = np.random.default_rng(0).random(rows) < 0.2
    window["occupation"] = window["occupation"].astype(object).where(~hit, "Drone-pilot")
    report = check_drift(adult_model(), window, cfg)
    assert report["drifted_columns"] == ["occupation"]
    new = report["columns"]["occupation"]["new_categories"]
    assert new["drifted"] and new["examples"][0] == "Drone-pilot"
    share = hit.sum() / window["occupation"].notna().sum()  # of the values present
    assert new["rate"] == pytest.approx(share, abs=1e-6)
    assert "test" in report["columns"]["occupation"]["reasons"]


@pytest.mark.parametrize("column", ["workclass", "native-country"])
def test_missing_values_injected(cfg, column):
    window = scored(sample(3000, 5))
    hit = np.random.default_rng(1).random(len(window)) < 0.15
    window.loc[hit, column] = np.nan
    report = check_drift(adult_model(), window, cfg)
    assert report["drifted_columns"] == [column]
    assert report["columns"][column]["reasons"] == ["missing"]
    missing = report["columns"][column]["missing"]
    assert missing["current"] > missing["reference"] + 0.1


def test_many_columns_drift_is_dataset_drift(cfg):
    window = scored(sample(3000, 6))
    numeric = [c for c, v in adult_model().profile["columns"].items() if v["kind"] == "numeric"]
    for col in numeric:
        window[col] = window[col] * 3 + 50
    window["occupation"] = "Drone-pilot"
    window["workclass"] = "Guild"
    report = check_drift(adult_model(), window, cfg)
    assert set(report["drifted_columns"]) >= {*numeric, "occupation", "workclass"}
    assert report["share_drifted"] >= 0.5 and report["status"] == "drift"


# --------------------------------------------------------------------------- edge cases


def tiny_profile() -> dict:
    """A profile with a constant numeric and a constant categorical column."""
    frame = pd.DataFrame(
        {
            "const": np.full(500, 7.0),
            "zero": np.zeros(500),
            "flag": ["on"] * 500,
            "x": np.random.default_rng(0).normal(size=500),
        }
    )
    proba = np.column_stack([np.full(500, 0.3), np.full(500, 0.7)])
    return build_profile(frame, proba, ["a", "b"], bins=100, top=50)


def test_constant_columns_give_finite_verdicts(cfg):
    profile = tiny_profile()
    same = pd.DataFrame(
        {"const": np.full(2000, 7.0), "zero": 0.0, "flag": "on", "x": np.zeros(2000)}
    )
    report = strict_json(check_drift(profile, same, cfg))
    assert report["columns"]["const"]["drifted"] is False
    assert report["columns"]["flag"]["drifted"] is False
    moved = same.assign(const=8.0, zero=1.0, flag="off")
    for rows in (100, 2000):  # small and large windows
        report = strict_json(check_drift(profile, moved.head(rows), cfg))
        assert {"const", "zero", "flag"} <= set(report["drifted_columns"])


def test_empty_window_and_absent_predictions(cfg):
    profile = tiny_profile()
    empty = pd.DataFrame({"const": [], "zero": [], "flag": [], "x": []})
    report = strict_json(check_drift(profile, empty, cfg))
    assert report["status"] == "ok" and report["rows"] == 0 and report["prediction"] is None
    for col in report["columns"].values():
        assert col["drifted"] is False
        assert "fewer than" in col["test"]["note"]
    few = pd.DataFrame({"const": [7.0] * 5, "zero": 0.0, "flag": "on", "x": 0.0})
    assert strict_json(check_drift(profile, few, cfg))["status"] == "ok"


def test_all_missing_or_absent_column_is_a_missing_signal(cfg):
    window = scored(sample(3000, 7)).drop(columns=["workclass"])
    window["fnlwgt"] = np.nan
    report = strict_json(check_drift(adult_model(), window, cfg))
    assert set(report["drifted_columns"]) == {"workclass", "fnlwgt"}
    assert report["columns"]["fnlwgt"]["missing"]["current"] == 1.0


# --------------------------------------------------------------------------- config


def test_psi_for_one_column_and_tests_by_config(cfg, tmp_path):
    """A file of one's own swaps tests (a node with _target_ replaces the default's) and
    adds one for a column; `overrides` tune parameters."""
    window = scored(sample(3000, 8))
    window["age"] = window["age"] + 7
    own = tmp_path / "mine.yaml"
    own.write_text(
        "drift:\n"
        "  categorical:\n"
        "    large: {_target_: automl.monitoring.stats.ChiSquare, p_value: 0.01}\n"
        "  columns:\n"
        "    age: {_target_: automl.monitoring.stats.PSI, threshold: 0.1, bins: 10}\n"
    )
    tuned = load_monitoring(str(own), ["drift.columns.age.floor=0.001"])
    assert tuned.drift.categorical.small == "chi_square"  # untouched: from default.yaml
    assert tuned.drift.tests.chi_square.p_value == 0.05
    report = check_drift(adult_model(), window, tuned)
    assert report["columns"]["age"]["test"]["method"] == "psi"
    assert report["columns"]["age"]["test"]["statistic"] > 0.1
    assert report["columns"]["sex"]["test"]["method"] == "chi_square"
    assert report["drifted_columns"] == ["age"]
    own.write_text("drift: {columns: {sex: {_target_: automl.monitoring.stats.Wasserstein}}}")
    with pytest.raises(ConfigError, match="needs a numeric column"):
        check_drift(adult_model(), window, load_monitoring(str(own)))


def test_monitoring_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="treshold"):
        load_monitoring("default", ["drift.share.treshold=0.3"])
    with pytest.raises(ConfigError, match="Could not find 'monitoring/no_such_file'"):
        load_monitoring("no_such_file")
    with pytest.raises(ConfigError, match="no_such_file.yaml: no such file"):
        load_monitoring("no_such_file.yaml")
    with pytest.raises(ConfigError, match="drift.prediction must be one of"):
        load_monitoring("default", ["drift.prediction=panic"])
    own = tmp_path / "strict.yaml"
    own.write_text("drift:\n  share: {drift: 0.2}\n")
    assert load_monitoring(str(own)).drift.share.drift == 0.2
    assert load_monitoring(str(own)).drift.large_sample == 1000  # the rest from default.yaml


def test_performance_degradation_and_too_few_labels(cfg):
    model = adult_model()
    raw = sample(3000, 9)
    window = scored(raw).assign(label=raw["income"].str.rstrip("."))
    flipped = window.assign(label=np.where(window["label"] == ">50K", "<=50K", ">50K"))
    perf = check_performance(
        model.manifest["metrics"], flipped, model.task, model.classes, cfg.performance
    )
    assert perf["status"] == "drift"
    assert perf["signals"] == ["performance:auc", "performance:accuracy"]
    assert perf["metrics"]["auc"]["current"] < 0.2
    few = check_performance(
        model.manifest["metrics"], window.head(50), model.task, model.classes, cfg.performance
    )
    assert few["status"] == "ok" and few["metrics"] == {} and "fewer than 100" in few["note"]
    one_class = window[window["label"] == "<=50K"]
    perf = strict_json(
        check_performance(
            model.manifest["metrics"], one_class, model.task, model.classes, cfg.performance
        )
    )
    assert perf["metrics"]["auc"]["current"] is None  # undefined, not NaN
    assert perf["metrics"]["accuracy"]["current"] > 0.8


def test_window_by_count_or_time(cfg):
    log = pd.DataFrame({"ts": np.arange(100.0), "age": np.arange(100)})
    assert len(select_window(log, cfg.window)) == 100  # rows: 1000
    by_rows = load_monitoring("default", ["window.rows=10"]).window
    assert select_window(log, by_rows)["age"].tolist() == list(range(90, 100))
    by_time = load_monitoring("default", ["window.seconds=30"]).window
    assert select_window(log, by_time, now=99.0)["age"].min() == 69


def test_one_verdict_is_the_worst_of_drift_performance_and_rejected_rows(cfg):
    """``verdict`` (the batch monitor's and the server's): performance only where labels
    are known, the rejected-rows rule only where rows were read from a file."""
    model = adult_model()
    raw = sample(3000, 9)
    window = scored(raw)
    unlabelled = verdict(model, window, cfg)
    assert unlabelled["status"] == "ok" and "performance" not in unlabelled
    assert unlabelled["signals"] == unlabelled["drift"]["signals"] == []
    shifted = verdict(model, window.assign(age=window["age"] + 7), cfg)
    assert shifted["status"] != "ok" and "column:age" in shifted["signals"]
    labels = raw["income"].str.rstrip(".")
    flipped = window.assign(label=np.where(labels == ">50K", "<=50K", ">50K"))
    read = {"rows_read": 3000, "rows_rejected": 600}
    found = verdict(model, flipped, cfg, read)
    assert found["status"] == "drift"  # performance.status, worse than the rule's warning
    assert found["signals"] == ["rows:rejected", "performance:auc", "performance:accuracy"]
    assert found["performance"]["rows"] == 3000
    fine = verdict(model, window.assign(label=labels), cfg, {**read, "rows_rejected": 10})
    assert fine["status"] == "ok" and fine["signals"] == []
