"""Every feature set and every step across all features trains with lgbm and linear on a
numeric and a categorical data set, and the bundle scores through the batch scorer and
the server (which says when it cannot use the fast path). The whole matrix is slow; a
representative part runs by default."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import FAST, ROOT, SHARED_DATA, compose_train, set_up_team

from automl import load_model
from automl.config import compose_config
from automl.data.dataset import load_dataset
from automl.services.training import train
from automl.serving.app import create_app

SETS = sorted(p.stem for p in (ROOT / "conf" / "features").glob("*.yaml"))
ACROSS = [
    f"features/{kind}={p.stem}"
    for kind in ("interactions", "selection", "decomposition")
    for p in sorted((ROOT / "conf" / "features" / kind).glob("*.yaml"))
    if p.stem != "none"
]
DATASETS = ["breast_cancer", "horse_colic"]  # numeric; coded categories with missing values
MODELS = ["lgbm", "linear"]
SMALL = [*FAST, "model.classifier.n_estimators=60"]
DEFAULT_RUN = {  # (data set, model, choice): a representative part of the matrix
    ("horse_colic", "lgbm", "features=hashing"),
    ("horse_colic", "linear", "features=frequency"),
    ("breast_cancer", "linear", "features/selection=mutual_info"),
    ("horse_colic", "linear", "features/interactions=products"),
    ("breast_cancer", "lgbm", "features/decomposition=pca"),
}


def cases():
    for dataset in DATASETS:
        for model in MODELS:
            for choice in [*(f"features={s}" for s in SETS), *ACROSS]:
                if choice == "features=none" and model == "linear":
                    continue  # native categoricals are for the boosters
                slow = (dataset, model, choice) not in DEFAULT_RUN
                marks = [pytest.mark.slow] if slow else []
                if dataset == "horse_colic":
                    marks.append(
                        pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="no ../shared/data")
                    )
                yield pytest.param(
                    dataset, model, choice, marks=marks, id=f"{dataset}-{model}-{choice}"
                )


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    root = tmp_path_factory.mktemp("feature-matrix-team")
    return set_up_team(
        root, {"projects": ["default"], "users": {"u": {"roles": {"default": "viewer"}}}}
    )


@pytest.mark.parametrize(("dataset", "model", "choice"), list(cases()))
def test_feature_choice_trains_predicts_and_serves(tmp_path, team, dataset, model, choice):
    extra = SMALL if model == "lgbm" else FAST
    out = tmp_path / "outputs"
    cfg = compose_train(
        [f"dataset={dataset}", f"model={model}", choice, *extra, f"paths.output_dir={out}"]
    )
    metrics = train(cfg, tmp_path / "run")
    assert metrics["auc"] > 0.6, metrics
    bundle = load_model(tmp_path / "run" / "model")
    data = load_dataset(cfg.dataset, cfg.evaluation, cfg.seed)
    rows = data.test.drop(columns=[data.target]).head(25)
    batch = bundle.score(rows)
    assert len(batch) == 25 and np.isfinite(batch.filter(like="proba").to_numpy()).all()
    names = bundle.pipeline[:-1].get_feature_names_out()
    assert len(names) > 0 and all(isinstance(n, str) for n in names)
    serve = compose_config(
        "automl.conf.apps", "serve", [f"paths.output_dir={out}", f"auth.url={team['db']}"]
    )
    with TestClient(create_app(serve), base_url="http://127.0.0.1") as client:
        key = {"X-API-Key": team["keys"]["u"]}
        records = json.loads(rows.head(3).to_json(orient="records", date_format="iso"))
        answer = client.post(f"/v1/models/default.{dataset}/predict", json=records, headers=key)
        assert answer.status_code == 200, answer.text
        served = answer.json()["probabilities"]
        expected = batch.filter(like="proba_").head(3).to_numpy()
        got = np.array([[p[c] for c in bundle.classes] for p in served])
        np.testing.assert_allclose(got, expected, rtol=1e-6)
        meta = client.get(f"/v1/models/default.{dataset}/metadata", headers=key).json()
        mixing = choice.startswith(("features/interactions", "features/decomposition"))
        assert (meta["fast_path"] != "compiled") or not mixing, meta["fast_path"]
        if choice.startswith("features/selection"):  # a selector compiles: kept columns
            assert meta["fast_path"] == "compiled", meta["fast_path"]
