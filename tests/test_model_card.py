"""The model card in every bundle: it exists, names the right numbers, escapes what comes
from data, and bundles saved before it still load."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import FAST, compose_train

from automl import load_model
from automl.bundle.model import MANIFEST, Model
from automl.config import compose_config
from automl.errors import AutomlError, ConfigError
from automl.evaluation.card import (
    CALIBRATION_PNG,
    CARD_JSON,
    CARD_MD,
    build_card,
    md,
    render_markdown,
    slice_rows,
)
from automl.evaluation.metrics import Recorded, bootstrap_intervals, score
from automl.services.training import train

OLD = Path(__file__).parent / "data" / "bundles_v0"
SMALL = [*FAST, "registry.enabled=false", "evaluation.bootstrap=50"]
HOSTILE_NUMBER = "a|b<script>"
HOSTILE_CATEGORY = "c`d`|[x](javascript:alert(1))"
HOSTILE_VALUES = ["x|y", "<img src=x onerror=alert(1)>", "# heading", "`tick`"]


def trained(root: Path, overrides: list[str]) -> tuple[dict, Path]:
    """Metrics and bundle of a small run of ``overrides``."""
    metrics = train(compose_train([*SMALL, *overrides]), root)
    return metrics, root / "model"


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> tuple[dict, Path]:
    return trained(
        tmp_path_factory.mktemp("card-binary"),
        ["dataset=breast_cancer", "evaluation.slices=[mean radius,worst texture]"],
    )


@pytest.fixture(scope="module")
def regressor(tmp_path_factory) -> tuple[dict, Path]:
    return trained(
        tmp_path_factory.mktemp("card-regression"),
        ["dataset=diabetes", "model=linear", "evaluation.slices=[sex,age]"],
    )


def card_of(bundle: Path) -> tuple[dict, str]:
    return json.loads((bundle / CARD_JSON).read_text()), (bundle / CARD_MD).read_text()


@pytest.mark.parametrize("run", ["classifier", "regressor"])
def test_every_bundle_has_a_card_whose_numbers_are_the_runs(run, request):
    metrics, bundle = request.getfixturevalue(run)
    card, text = card_of(bundle)
    manifest = json.loads((bundle / MANIFEST).read_text())
    for name in (CARD_MD, CARD_JSON):
        assert name in manifest["files"]  # hashed like the pipeline
    load_model(bundle)  # and the hashes hold

    values = card["metrics"]["values"]
    expected = {k: v for k, v in metrics.items() if k in values}
    assert set(values) == set(manifest["config"]["evaluation"]["report"][manifest["task"]])
    assert {k: v["value"] for k, v in values.items()} == expected  # equal to metrics.json
    for name, interval in values.items():
        assert interval["low"] <= interval["value"] <= interval["high"], name
        assert f"| {md(name)} | {interval['value']:.4f} |" in text

    data = card["data"]
    assert (data["train_rows"], data["test_rows"]) == (
        manifest["train_rows"],
        manifest["test_rows"],
    )
    assert data["target"] == manifest["target"] and data["task"] == manifest["task"]
    assert {c["name"] for c in data["columns"]} == set(manifest["contract"]["columns"])
    details = card["model_details"]
    assert details["lineage"]["data_fingerprint"] == manifest["data_fingerprint"]
    assert details["lineage"]["run"] == bundle.parent.name
    assert details["source_commit"] == manifest["source_commit"]
    assert details["search"]["n_trials"] == 1
    assert [m["weight"] for m in details["members"]] == [1.0]

    slices = manifest["config"]["evaluation"]["slices"]
    assert [s["column"] for s in card["slices"]] == slices
    for column in card["slices"]:
        assert sum(s["rows"] for s in column["slices"]) == data["test_rows"]
        assert f"### {md(column['column'])}" in text
    importance = pd.read_csv(bundle / "importance.csv")  # the bundle's own table, hashed
    assert "importance.csv" in manifest["files"] and "importance.png" in manifest["files"]
    assert set(importance["feature"]) == set(manifest["features"])
    top = card["features"]["top"]
    assert card["features"]["computed"] and top[0]["feature"] == importance["feature"][0]
    assert top[0]["permutation_mean"] == pytest.approx(importance["permutation_mean"][0])
    assert f"| {md(top[0]['feature'])} |" in text.split("## Top features")[1]
    assert card["intended_use"] and md(card["intended_use"]) in text  # from the YAML


def test_a_classifier_card_has_its_calibration(classifier):
    _, bundle = classifier
    card, text = card_of(bundle)
    calibration = card["calibration"]
    assert 0 <= calibration["brier"] <= 0.25
    (curve,) = calibration["curves"]  # binary: the positive class
    assert curve["class"] == "malignant"
    assert sum(curve["rows"]) == card["data"]["test_rows"]
    assert all(0 <= v <= 1 for v in curve["mean_predicted"] + curve["fraction_positive"])
    assert (bundle / CALIBRATION_PNG).read_bytes().startswith(b"\x89PNG")
    assert f"![Calibration on the test rows]({CALIBRATION_PNG})" in text


def test_a_regression_card_has_no_calibration(regressor):
    _, bundle = regressor
    card, text = card_of(bundle)
    assert card["calibration"] is None and card["model_details"]["calibration"] is None
    assert not (bundle / CALIBRATION_PNG).exists()
    assert "## Calibration" not in text
    sex = card["slices"][0]["slices"]  # two values: one slice each, not bins
    assert [s["kind"] for s in sex] == ["value", "value"]


def test_slices_of_values_bins_other_and_missing():
    column = pd.Series([f"v{i % 12}" for i in range(60)] + [None] * 3, dtype=object)
    kinds = [(kind, mask.sum()) for kind, _, mask in slice_rows(column)]
    assert [k for k, _ in kinds] == ["value"] * 10 + ["other", "missing"]
    assert sum(n for _, n in kinds) == len(column)
    numeric = pd.Series(np.r_[np.arange(100.0), [np.nan]])
    slices = slice_rows(numeric)
    assert [k for k, _, _ in slices] == ["bin"] * 4 + ["missing"]
    assert [m.sum() for _, _, m in slices] == [25, 25, 25, 25, 1]
    assert [label for _, label, _ in slice_rows(pd.Series([0.5, 1.5] * 5))] == ["0.5", "1.5"]


def test_a_slice_too_small_for_a_metric_says_so():
    y = np.array([0, 0, 1, 1, 0, 1])
    proba = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.6, 0.4], [0.2, 0.8]])
    recorded = Recorded(proba.argmax(1), proba, None, np.array([0, 1]))
    report = {"auc": "roc_auc", "log_loss": "neg_log_loss", "accuracy": "accuracy"}
    test = pd.DataFrame({"group": ["a", "a", "b", "b", "b", "b"]})
    manifest = {
        "dataset": "toy",
        "model_family": "toy",
        "task": "binary",
        "target": "t",
        "classes": ["no", "yes"],
        "config": {"evaluation": {"report": {"binary": report}}},
    }
    card = build_card(
        manifest, recorded=recorded, y=y, test=test, run="r", slices=["group"], bootstrap=20
    )
    (group,) = card["slices"]
    a = next(s for s in group["slices"] if s["value"] == "a")  # only class 0
    assert a["metrics"]["auc"] is None and a["metrics"]["accuracy"] == 1.0
    assert a["undefined"]["auc"] == "only 1 of the 2 classes in these rows"
    text = render_markdown(card)
    # log loss is defined on one class's rows (every class is named): only AUC is not
    assert a["metrics"]["log_loss"] is not None
    assert "- a: auc: only 1 of the 2 classes in these rows" in text
    with pytest.raises(ConfigError, match="evaluation.slices"):
        build_card(manifest, recorded=recorded, y=y, test=test, run="r", slices=["nope"])


def test_bootstrap_resamples_the_recorded_predictions_with_the_evaluate_metrics():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    p = np.clip(y * 0.6 + rng.normal(0.2, 0.2, 300), 0.01, 0.99)
    proba = np.column_stack([1 - p, p])
    recorded = Recorded((p >= 0.5).astype(int), proba, None, np.array([0, 1]))
    report = {"auc": "roc_auc", "log_loss": "neg_log_loss"}
    intervals = bootstrap_intervals(recorded, y, report, n=100, seed=1)
    assert {k: v["value"] for k, v in intervals.items()} == score(recorded, y, report)
    assert intervals == bootstrap_intervals(recorded, y, report, n=100, seed=1)  # seeded
    for v in intervals.values():
        assert v["low"] < v["value"] < v["high"]


def test_markdown_escaping_of_what_comes_from_data():
    assert md("a|b<script>") == "a\\|b&lt;script&gt;"
    assert md("`x` [l](javascript:1)") == "\\`x\\` \\[l\\](javascript:1)"
    assert md("line\nbreak") == "line break"
    assert md("# title") == "\\# title" and md("1. item") == "1\\. item"
    assert md("2026-01-02") == "2026-01-02"


def hostile_data_set(root: Path) -> Path:
    """A CSV with hostile column names and values, and its data set YAML (a config
    folder under ``root``)."""
    rng = np.random.default_rng(0)
    rows = 240
    number = rng.normal(size=rows)
    frame = pd.DataFrame(
        {
            HOSTILE_NUMBER: number,
            HOSTILE_CATEGORY: [HOSTILE_VALUES[i % len(HOSTILE_VALUES)] for i in range(rows)],
            "label": np.where(number + rng.normal(scale=0.5, size=rows) > 0, "yes", "no"),
        }
    )
    frame.to_csv(root / "hostile.csv", index=False)
    dataset = {
        "name": "hostile_card",
        "description": "<script>alert('d')</script> | desc",
        "intended_use": "`rm -rf` <b>use</b> | [x](javascript:alert(1))",
        "limitations": "# not a heading\n- nor a list",
        "target": "label",
        "task": "binary",
        "source": {
            "_target_": "automl.data.sources.FileSource",
            "path": str(root / "hostile.csv"),
            "data_dir": None,
            "cache_dir": "${paths.cache_dir}",
            "reader": {"_target_": "pandas.read_csv", "_partial_": True},
        },
    }
    (root / "conf" / "dataset").mkdir(parents=True)
    (root / "conf" / "dataset" / "hostile_card.yaml").write_text(yaml.safe_dump(dataset))
    return root / "conf"


def test_hostile_names_and_values_are_escaped_in_the_card(tmp_path):
    conf = hostile_data_set(tmp_path)
    cfg = compose_config(
        "automl.conf",
        "train",
        [
            f"hydra.searchpath=[pkg://automl.conf.common,file://{conf}]",
            "dataset=hostile_card",
            "model=linear",
            *SMALL,
        ],
    )
    cfg.evaluation.slices = [HOSTILE_NUMBER, HOSTILE_CATEGORY]
    train(cfg, tmp_path / "run")
    card, text = card_of(tmp_path / "run" / "model")
    assert [s["column"] for s in card["slices"]] == [HOSTILE_NUMBER, HOSTILE_CATEGORY]
    values = {s["value"] for s in card["slices"][1]["slices"]}
    assert values == set(HOSTILE_VALUES)  # the JSON keeps them as they are

    assert "<" not in text  # no HTML: every < is &lt;
    assert re.search(r"(?<!\\)`", text) is None  # no code spans: every backtick escaped
    links = re.findall(r"(?<!\\)\[.*", text)
    assert links == [f"[Calibration on the test rows]({CALIBRATION_PNG})"]  # ours only
    assert not any(line.startswith(("# not", "- nor")) for line in text.splitlines())
    assert f"### {md(HOSTILE_NUMBER)}" in text and "a\\|b&lt;script&gt;" in text
    assert md("<img src=x onerror=alert(1)>") in text
    # each table's rows have as many cells as its header
    for block in re.split(r"\n\n", text):
        rows = [r for r in block.splitlines() if r.startswith("|")]
        widths = {len(re.findall(r"(?<!\\)\|", r)) for r in rows}
        assert len(widths) <= 1, block


def test_bundle_files_are_checked_and_named_plainly(classifier, tmp_path):
    _, bundle = classifier
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    (copy / CARD_MD).write_text("# edited\n")
    with pytest.raises(AutomlError, match=CARD_MD):
        Model.load(copy)
    model = load_model(bundle)
    for name in ("../escape.md", "manifest.json", "pipeline.joblib", ".."):
        with pytest.raises(AutomlError, match="not a plain name"):
            model.save(tmp_path / "bad", extra_files={name: "x"})
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("bundle", ["horse_colic_xgb", "iris_auto"])
def test_bundles_saved_before_the_card_still_load(bundle):
    assert not (OLD / bundle / CARD_MD).exists()
    model = load_model(OLD / bundle)
    assert CARD_MD not in model.manifest["files"]
    assert model.manifest.get("calibration") is None
