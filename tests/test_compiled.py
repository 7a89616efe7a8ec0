"""The compiled model (automl.bundle.compiled): per batch and per record, it gives the
pipeline's numbers bit for bit — single pipelines, weighted ensembles and calibrated
ensembles, classification and regression, with missing values and unseen categories —
and a model it cannot compile, or rows it cannot take, are scored by the pipeline."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from helpers import FAST, compose_train, needs_shared_data
from sklearn.base import clone

from automl.bundle.compiled import (
    Compilers,
    Fallback,
    NotCompilable,
    blend,
    compile_estimator,
)
from automl.bundle.model import Model
from automl.data.dataset import load_dataset
from automl.models.ensemble import Calibrated, ProbabilityCalibrator, WeightedEnsemble
from automl.search.fit import make_families
from automl.services.training import manifest
from automl.serving.fastpath import FastPath

pytestmark = needs_shared_data


def fitted_model(dataset: str, families: list[str], combine: str = "one", **extra) -> tuple:
    """A Model of ``families`` fitted on ``dataset``'s training rows, and its test rows:
    one pipeline, a weighted ensemble, or a calibrated weighted ensemble."""
    overrides = [f"{k}={v}" for k, v in extra.items()]
    cfg = compose_train([f"dataset={dataset}", "model=auto", *FAST, *overrides])
    data = load_dataset(cfg.dataset, cfg.evaluation, cfg.seed)
    X, y = data.xy(data.train)
    pipelines = make_families(cfg, data.task, 1)
    members = [clone(pipelines[f].pipeline) for f in families]
    if combine == "one":
        model = members[0].fit(X, y)
    else:
        model = WeightedEnsemble(members, [0.7, 0.3][: len(members)]).fit(X, y)
        if combine == "calibrated":
            calibrator = ProbabilityCalibrator("isotonic").fit(y, model.predict_proba(X))
            model = Calibrated(model, calibrator).fit(X, y)
    bundle = Model(model, manifest(cfg, data, {}))
    return bundle, data.test.drop(columns=data.target)


def expected(model: Model, features: pd.DataFrame) -> np.ndarray:
    if model.classes is None:
        return model.pipeline.predict(features)
    return model.pipeline.predict_proba(features)


def awkward(model: Model, frame: pd.DataFrame) -> pd.DataFrame:
    """Test rows plus an unseen category and a missing one in every nullable string
    column, and a missing number in every nullable numeric column."""
    frame = frame.copy()
    for i, (column, spec) in enumerate(model.input_contract.columns.items()):
        if not spec.nullable or spec.allowed is not None:
            continue
        if spec.dtype == "category":
            frame.iloc[i % len(frame), frame.columns.get_loc(column)] = "never seen before"
            frame.iloc[(i + 1) % len(frame), frame.columns.get_loc(column)] = np.nan
        elif spec.dtype == "float":
            frame.iloc[i % len(frame), frame.columns.get_loc(column)] = np.nan
    return frame


@pytest.mark.parametrize(
    "dataset, families, combine",
    [
        # one LightGBM pipeline: every adult test row in tests/test_serve.py
        pytest.param("horse_colic", ["lgbm"], "one", marks=pytest.mark.slow),
        ("horse_colic", ["lgbm", "linear"], "ensemble"),
        ("horse_colic", ["linear", "rf"], "calibrated"),
        ("abalone", ["lgbm", "linear"], "ensemble"),
    ],
)
def test_compiled_batches_and_records_equal_the_pipeline(dataset, families, combine):
    model, test = fitted_model(dataset, families, combine)
    assert model.compile() == "compiled"
    features = model.prepare(awkward(model, test))
    want = expected(model, features)
    assert np.array_equal(model.compiled.frame(features), want)  # bit for bit
    assert np.array_equal(model.output(features), want)
    # one record at a time, against the pipeline on that record (a linear model's matrix
    # product may round differently for one row than inside a batch)
    records = json.loads(awkward(model, test).to_json(orient="records"))  # as JSON sends them
    fast = FastPath(model)
    for i, record in enumerate(records):
        assert np.array_equal(fast.predict([record]), expected(model, features.iloc[[i]]))


def test_blend_is_the_ensembles_own_arithmetic():
    rng = np.random.default_rng(0)
    outputs = [rng.random((5, 3)) for _ in range(3)]
    weights = [0.5, 0.25, 0.25]
    total = sum(w * o for o, w in zip(outputs, weights)) / float(np.sum(weights))
    assert np.array_equal(blend(outputs, weights), total)


def test_a_model_it_cannot_compile_is_scored_by_its_pipeline():
    model, test = fitted_model("horse_colic", ["lgbm"], features="none")  # pandas categoricals
    assert "vectorised pipeline only" in model.compile() and model.compiled is None
    with pytest.raises(NotCompilable):
        FastPath(model)
    features = model.prepare(test)
    assert np.array_equal(model.output(features), expected(model, features))


def test_an_encoder_that_refuses_unseen_values_falls_back_to_the_pipeline():
    model, test = fitted_model("horse_colic", ["linear"])
    onehot = model.pipeline[0].named_transformers_["categorical"][-1]
    onehot.handle_unknown = "error"  # as a user's own feature set might declare it
    model.compile()
    features = model.prepare(test)
    assert np.array_equal(model.output(features), expected(model, features))
    column = next(c for c, s in model.input_contract.columns.items() if s.dtype == "category")
    unseen = features.assign(**{column: "never seen before"})
    with pytest.raises(Fallback):
        model.compiled.frame(unseen)
    with pytest.raises(ValueError, match="unknown categor"):
        model.output(unseen)  # the pipeline names the problem


def test_an_empty_compiler_table_compiles_nothing():
    model, _ = fitted_model("horse_colic", ["lgbm"])
    with pytest.raises(NotCompilable, match="no compiler for SimpleImputer"):
        compile_estimator(model.pipeline, True, Compilers([], []))
    assert model.compile({"enabled": False}) == "disabled (compiled.enabled=false)"
    assert model.compiled is None


def test_a_big_frame_is_scored_a_chunk_at_a_time_with_the_same_result(monkeypatch):
    import automl.bundle.model as bundle_model

    model, test = fitted_model("adult", ["lgbm"])
    whole = model.score(test)
    proba = model.predict_proba(test)
    monkeypatch.setattr(bundle_model, "SCORE_ROWS", 1_000)  # adult's 16,281 rows: 17 chunks
    pd.testing.assert_frame_equal(model.score(test), whole)
    pd.testing.assert_frame_equal(model.predict_proba(test), proba)
    assert whole.index.equals(test.index)
