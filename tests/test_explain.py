"""Explanations: per-row contributions of each input column, on the model's output scale,
for every model family and for ensembles (automl.bundle.explain), through the bundle
(``Model.explain``), the predict command (``explain=true``) and the server
(``?contributions=true``); global importance and its plot."""

from __future__ import annotations

import json
from functools import cache

import numpy as np
import pandas as pd
import pytest
import shap
from fastapi.testclient import TestClient
from helpers import compose_train, needs_shared_data, run_cli, set_up_team
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from automl.bundle.explain import (
    Explainer,
    Settings,
    background_sample,
    contributions,
    global_importance,
    importance_png,
)
from automl.bundle.model import BACKGROUND, Model
from automl.bundle.registry import Registry
from automl.config import compose_config
from automl.data.dataset import Dataset, load_dataset
from automl.errors import AutomlError, ConfigError
from automl.features import feature_steps
from automl.models.ensemble import WeightedEnsemble
from automl.models.estimator import build_model

ATOL = 1e-6
ROWS = 20  # rows explained per test


@cache
def dataset(name: str, train_rows: int | None = None) -> Dataset:
    """A shipped data set as training loads it (the first ``train_rows`` training rows)."""
    cfg = compose_train([f"dataset={name}"])
    data = load_dataset(cfg.dataset, cfg.evaluation, cfg.seed)
    if train_rows is not None:
        data.train = data.train.iloc[:train_rows]
    return data


@cache
def fitted(name: str, family: str, features: str = "default", *extra: str) -> Pipeline:
    """A pipeline of ``family`` on ``features``, fitted on the data set's training rows."""
    data = dataset(name, 4000 if name == "adult" else None)
    cfg = compose_train([f"dataset={name}", f"model={family}", f"features={features}", *extra])
    steps = feature_steps(cfg.features, task=data.task)
    pipeline = Pipeline([*steps, ("model", build_model(cfg.model, data.task, cfg.seed))])
    return pipeline.fit(*data.xy(data.train))


def explained(name: str, model, rows: int = ROWS):
    """(explanation of ``rows`` test rows, the model's own output for them)."""
    data = dataset(name, 4000 if name == "adult" else None)
    X, _ = data.xy(data.test.iloc[:rows])
    background = background_sample(data.xy(data.train)[0], 100, 0)
    explanation = contributions(model, X, data.classes, background)
    if data.classes is None:
        return explanation, model.predict(X).reshape(-1, 1)
    return explanation, model.predict_proba(X)


def assert_adds_up(explanation, output) -> None:
    total = explanation.base + explanation.values.sum(axis=2)
    assert total.shape == output.shape
    assert np.abs(total - output).max() <= ATOL, explanation.method
    assert np.allclose(explanation.output, output, rtol=0, atol=1e-12)


FAMILIES = ["lgbm", "xgb", "hist_gb", "rf", "extra_trees", "linear"]


@pytest.mark.parametrize("name", ["breast_cancer", "diabetes"])
@pytest.mark.parametrize("family", FAMILIES)
def test_contributions_add_up_to_the_output_for_every_family(name, family):
    """Binary (both classes' probabilities) and regression (the value); one column per
    input column, base + contributions = the model's output within 1e-6."""
    model = fitted(name, family)
    explanation, output = explained(name, model)
    assert_adds_up(explanation, output)
    data = dataset(name)
    assert explanation.columns == list(data.features)
    assert explanation.outputs == (data.classes or ["prediction"])
    if name == "breast_cancer":  # the two classes' contributions mirror each other
        assert np.allclose(explanation.values[:, 0], -explanation.values[:, 1], atol=ATOL)


@pytest.mark.parametrize("family", ["lgbm", "rf", "linear"])
def test_multiclass_explains_every_class(family):
    model = fitted("wine", family)
    explanation, output = explained("wine", model)
    assert_adds_up(explanation, output)
    assert explanation.values.shape == (ROWS, 3, 13)
    assert np.allclose(explanation.values.sum(axis=1), 0.0, atol=1e-6)  # probabilities sum to 1


def test_the_explainer_chosen_per_family():
    """Tree SHAP where it is exact on the output scale, linear SHAP for a linear
    regressor, the model-agnostic explainer for the rest."""
    assert explained("diabetes", fitted("diabetes", "lgbm"))[0].method == "tree (path-dependent)"
    assert explained("diabetes", fitted("diabetes", "linear"))[0].method == "linear (exact)"
    forest = explained("breast_cancer", fitted("breast_cancer", "rf"))[0]
    assert forest.method == "tree (path-dependent)"  # a forest's raw output: probabilities
    booster = explained("breast_cancer", fitted("breast_cancer", "xgb"))[0].method
    assert booster.startswith("tree (interventional, probability)")
    logistic = explained("breast_cancer", fitted("breast_cancer", "linear"))[0]
    assert logistic.method.startswith("permutation Shapley") and not logistic.notes


@needs_shared_data
def test_one_hot_columns_are_summed_back_to_their_input_column():
    """adult with one-hot categories: the explanation has exactly the input columns, and
    a category's contribution is the sum of its one-hot columns' Tree SHAP values."""
    model = fitted("adult", "lgbm")
    explanation, output = explained("adult", model)
    assert_adds_up(explanation, output)
    data = dataset("adult", 4000)
    assert explanation.columns == list(data.features)
    X = data.xy(data.test.iloc[:ROWS])[0]
    background = model[:-1].transform(background_sample(data.xy(data.train)[0], 100, 0))
    tree = shap.TreeExplainer(
        model[-1].estimator_,
        data=background,
        feature_perturbation="interventional",
        model_output="probability",
    )
    per_feature = tree.shap_values(model[:-1].transform(X), check_additivity=False)
    names = list(model[:-1].get_feature_names_out())
    for column in ("workclass", "occupation", "age"):
        mine = [i for i, n in enumerate(names) if n == column or n.startswith(column + "_")]
        j = explanation.columns.index(column)
        assert len(mine) >= 1
        assert np.allclose(per_feature[:, mine].sum(axis=1), explanation.values[:, 1, j], atol=1e-5)


def test_selection_maps_through_and_an_unused_column_contributes_nothing():
    model = fitted("breast_cancer", "lgbm", "default", "features/selection=anova")
    explanation, output = explained("breast_cancer", model)
    assert_adds_up(explanation, output)
    assert explanation.method.startswith("tree")
    kept = model[1].step_.get_support()[: len(explanation.columns)]  # numeric block first
    dropped = [j for j, keep in enumerate(kept) if not keep]
    assert dropped and np.all(explanation.values[:, :, dropped] == 0.0)


def test_steps_that_mix_columns_are_explained_on_the_input_columns():
    model = fitted("breast_cancer", "linear", "default", "features/interactions=products")
    explanation, output = explained("breast_cancer", model)
    assert_adds_up(explanation, output)
    assert any("mixes columns" in note for note in explanation.notes)


@needs_shared_data
def test_hashing_several_columns_together_falls_back_and_still_adds_up():
    model = fitted("adult", "linear", "hashing")
    explanation, output = explained("adult", model, rows=5)
    assert_adds_up(explanation, output)
    assert any("mixes its columns" in note for note in explanation.notes)


def ensemble_of(members: list[Pipeline], weights: list[float]) -> WeightedEnsemble:
    ensemble = WeightedEnsemble(members, weights)
    ensemble.members_ = members  # fitted already
    ensemble.classes_ = getattr(members[0], "classes_", None)
    return ensemble


def test_an_ensemble_is_the_weighted_mean_of_its_members():
    """Members with different feature steps, each explained through its own; the
    ensemble's contributions are their weighted mean and add up to its output."""
    members = [fitted("breast_cancer", "rf"), fitted("breast_cancer", "linear", "robust")]
    ensemble = ensemble_of(members, [0.75, 0.25])
    explanation, output = explained("breast_cancer", ensemble)
    assert_adds_up(explanation, output)
    assert explanation.method.startswith("ensemble: 0.75 x tree (path-dependent) + 0.25 x")
    parts = [explained("breast_cancer", m)[0] for m in members]
    blend = 0.75 * parts[0].values + 0.25 * parts[1].values
    assert np.allclose(explanation.values, blend, atol=1e-12)


@needs_shared_data
def test_an_ensemble_on_adult_with_a_member_that_mixes_columns():
    members = [fitted("adult", "lgbm"), fitted("adult", "linear", "hashing")]
    explanation, output = explained("adult", ensemble_of(members, [0.6, 0.4]), rows=5)
    assert_adds_up(explanation, output)
    assert explanation.columns == list(dataset("adult", 4000).features)


def test_a_regression_ensemble_adds_up():
    members = [fitted("diabetes", "xgb"), fitted("diabetes", "linear")]
    explanation, output = explained("diabetes", ensemble_of(members, [0.5, 0.5]))
    assert_adds_up(explanation, output)


def test_explanations_are_reproducible_and_settings_are_checked():
    model = fitted("breast_cancer", "linear")
    first, _ = explained("breast_cancer", model, rows=3)
    again, _ = explained("breast_cancer", model, rows=3)
    assert np.array_equal(first.values, again.values)
    with pytest.raises(ConfigError, match="unknown setting"):
        Settings.of({"permutation": 3})
    data = dataset("breast_cancer")
    with pytest.raises(AutomlError, match="background"):
        Explainer(model, data.classes, None)
    explainer = Explainer(model, data.classes, data.xy(data.train)[0].head(10))
    with pytest.raises(AutomlError, match="without the column"):
        explainer.explain(data.xy(data.test)[0].drop(columns=["mean radius"]))


# --------------------------------------------------------------------------- bundles


def bundle(name: str, model, family: str) -> Model:
    """A bundle of ``model`` as training makes one, with its background sample."""
    data = dataset(name, 4000 if name == "adult" else None)
    manifest = {
        "project": "default",
        "dataset": data.name,
        "model_family": family,
        "task": data.task,
        "target": data.target,
        "classes": data.classes,
        "features": data.features,
        "contract": data.contract.to_dict(),
        "clean": data.clean,
    }
    X = data.xy(data.train)[0]
    return Model(model, manifest, background=background_sample(X, 100, 0))


def raw_rows(name: str, rows: int = 5) -> pd.DataFrame:
    data = dataset(name, 4000 if name == "adult" else None)
    return data.test.drop(columns=data.target).iloc[:rows]


def test_model_explain_names_its_columns_and_survives_save_and_load(tmp_path):
    """Binary: ``contrib_<column>`` and ``base_value`` (the positive class); multiclass:
    ``contrib_<class>__<column>`` and ``base_value_<class>``; both add up to the scores.
    The background sample is a hashed file of the bundle."""
    model = bundle("breast_cancer", fitted("breast_cancer", "xgb"), "xgb")
    model.save(tmp_path / "bc")
    manifest = json.loads((tmp_path / "bc" / "manifest.json").read_text())
    assert BACKGROUND in manifest["files"]
    loaded = Model.load(tmp_path / "bc")
    assert loaded.explainable and len(loaded.background) == 100
    rows = raw_rows("breast_cancer")
    table = loaded.explain(rows)
    columns = list(dataset("breast_cancer").features)
    assert list(table.columns) == [f"contrib_{c}" for c in columns] + ["base_value"]
    assert list(table.columns) == loaded.explanation_columns()
    total = table.sum(axis=1).to_numpy()
    positive = loaded.classes[1]
    assert np.allclose(total, loaded.score(rows)[f"proba_{positive}"], rtol=0, atol=ATOL)
    assert table.index.equals(rows.index)

    wine = bundle("wine", fitted("wine", "rf"), "rf")
    table = wine.explain(raw_rows("wine"))
    scores = wine.score(raw_rows("wine"))
    for c in wine.classes:
        parts = [n for n in table.columns if n.startswith(f"contrib_{c}__")]
        assert len(parts) == 13
        total = table[parts].sum(axis=1) + table[f"base_value_{c}"]
        assert np.allclose(total, scores[f"proba_{c}"], rtol=0, atol=ATOL)


def test_a_bundle_without_a_background_says_to_retrain(tmp_path):
    model = bundle("diabetes", fitted("diabetes", "linear"), "linear")
    model.background = None
    with pytest.raises(AutomlError, match="retrain"):
        model.explain(raw_rows("diabetes"))
    table = bundle("diabetes", fitted("diabetes", "linear"), "linear").explain(raw_rows("diabetes"))
    assert "base_value" in table.columns and "contrib_bmi" in table.columns


# --------------------------------------------------------------------------- predict command


@needs_shared_data
def test_predict_command_adds_contributions_and_sets_bad_rows_aside(tmp_path):
    model = bundle("adult", fitted("adult", "lgbm"), "lgbm")
    model.save(tmp_path / "model")
    rows = raw_rows("adult", 30).reset_index(drop=True)
    rows.loc[3, "age"] = -5  # breaks the contract: quarantined, as without explain
    rows.to_csv(tmp_path / "in.csv", index=False)
    done = run_cli(
        "automl.predict", f"model={tmp_path / 'model'}", f"input={tmp_path / 'in.csv'}",
        f"output={tmp_path / 'out.csv'}", "explain=true", f"paths.output_dir={tmp_path}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = pd.read_csv(tmp_path / "out.csv")
    assert len(out) == 29 and len(pd.read_csv(tmp_path / "out.rejects.csv")) == 1
    contrib = [c for c in out.columns if c.startswith("contrib_")]
    assert contrib == [f"contrib_{c}" for c in dataset("adult", 4000).features]
    total = out[contrib].sum(axis=1) + out["base_value"]
    assert np.allclose(total, out["proba_>50K"], rtol=0, atol=1e-6)
    assert "age" in out.columns and "prediction" in out.columns

    model.background = None
    model.save(tmp_path / "old")
    refused = run_cli(
        "automl.predict", f"model={tmp_path / 'old'}", f"input={tmp_path / 'in.csv'}",
        f"output={tmp_path / 'old.csv'}", "explain=true", f"paths.output_dir={tmp_path}",
    )  # fmt: skip
    said = refused.stdout + refused.stderr
    assert refused.returncode == 1 and "retrain" in said and "Traceback" not in said
    assert not (tmp_path / "old.csv").exists()


# --------------------------------------------------------------------------- server


def test_server_contributions_for_a_linear_model_and_an_ensemble(tmp_path):
    """Per input column, on the probability: base_value + values = the probability the
    same answer gives; metadata says contributions are available."""
    out = tmp_path / "outputs"
    cfg = compose_config("automl.conf.apps", "serve", [f"paths.output_dir={out}"])
    registry = Registry(cfg.registry.uri, cfg.registry.store)
    members = [fitted("breast_cancer", "hist_gb"), fitted("breast_cancer", "linear", "robust")]
    models = {
        "default.bc_linear": bundle("breast_cancer", fitted("breast_cancer", "linear"), "linear"),
        "default.bc_auto": bundle("breast_cancer", ensemble_of(members, [0.5, 0.5]), "auto"),
        "default.diabetes": bundle("diabetes", fitted("diabetes", "rf"), "rf"),
    }
    for name, model in models.items():
        model.save(tmp_path / name)
        registry.register(name, tmp_path / name, model.manifest, tmp_path)
    team = {"projects": ["default"], "users": {"u": {"roles": {"default": "viewer"}}}}
    db = set_up_team(tmp_path, team)
    cfg.auth.url = db["db"]
    from automl.serving.app import create_app

    records = json.loads(raw_rows("breast_cancer", 3).to_json(orient="records"))
    positive = dataset("breast_cancer").classes[1]
    with TestClient(create_app(cfg), base_url="http://127.0.0.1") as client:
        key = {"X-API-Key": db["keys"]["u"]}
        for name in ("default.bc_linear", "default.bc_auto"):
            meta = client.get(f"/v1/models/{name}/metadata", headers=key).json()
            assert meta["contributions"] is True
            url = f"/v1/models/{name}/predict?contributions=true"
            answer = client.post(url, json=records, headers=key)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["explanation"]["output"] == f"the probability of class '{positive}'"
            for proba, contrib in zip(body["probabilities"], body["contributions"], strict=True):
                assert set(contrib["values"]) == set(records[0])
                total = contrib["base_value"] + sum(contrib["values"].values())
                assert total == pytest.approx(proba[positive], abs=ATOL)
        assert body["explanation"]["method"].startswith("ensemble: 0.50 x")
        one = json.loads(raw_rows("diabetes", 1).to_json(orient="records"))[0]
        answer = client.post(
            "/v1/models/default.diabetes/predict?contributions=true", json=one, headers=key
        ).json()
        (contrib,) = answer["contributions"]
        total = contrib["base_value"] + sum(contrib["values"].values())
        assert total == pytest.approx(answer["predictions"][0], abs=ATOL)
        bad = dict(records[0], **{"mean radius": "wide"})
        refused = client.post(
            "/v1/models/default.bc_linear/predict?contributions=true", json=bad, headers=key
        )
        assert refused.status_code == 422 and "mean radius" in refused.text


# --------------------------------------------------------------------------- importance


@needs_shared_data
def test_global_importance_on_adult_ranks_a_sensible_column_first():
    data = dataset("adult", 4000)
    X, y = data.xy(data.test.iloc[:1000])
    model = fitted("adult", "lgbm")
    table = global_importance(model, X, y, "roc_auc", seed=0, n_repeats=2)
    assert list(table.columns) == ["feature", "permutation_mean", "permutation_std", "model"]
    assert sorted(table["feature"]) == sorted(data.features)
    strong = {"marital-status", "relationship", "capital-gain", "education-num", "age"}
    assert table["feature"].iloc[0] in strong
    assert table["permutation_mean"].is_monotonic_decreasing
    assert table["model"].sum() == pytest.approx(1.0)  # shares of the model's own importance
    assert importance_png(table, "roc_auc")[:8] == b"\x89PNG\r\n\x1a\n"
    members = [model, fitted("adult", "hist_gb")]  # hist_gb has no importance of its own
    ensemble = ensemble_of(members, [0.5, 0.5])
    with threadpool_limits(limits=1):  # many small predictions: one thread is faster
        mixed = global_importance(ensemble, X.iloc[:200], y[:200], "roc_auc", 0, 1)
    assert mixed.set_index("feature")["model"].to_dict() == pytest.approx(
        table.set_index("feature")["model"].to_dict()
    )
