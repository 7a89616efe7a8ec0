"""Probability calibration (``model.calibration``): fitted out of fold, applied to the
refit model, recorded in the manifest, and it helps a badly calibrated model."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from helpers import FAST, compose_train, needs_shared_data
from sklearn.base import clone
from sklearn.metrics import brier_score_loss, log_loss

from automl import load_model
from automl.data.dataset import load_dataset
from automl.errors import ConfigError
from automl.models.ensemble import Calibrated, ProbabilityCalibrator
from automl.services.training import train

SMALL = [*FAST, "registry.enabled=false", "evaluation.bootstrap=20"]


def overconfident(rng: np.random.Generator, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from true probabilities, and a model's overconfident, shifted ones."""
    truth = rng.uniform(0.05, 0.95, rows)
    y = (rng.uniform(size=rows) < truth).astype(int)
    p = 1 / (1 + np.exp(-4 * (np.log(truth / (1 - truth)) + 1)))  # too sharp, too high
    return y, np.column_stack([1 - p, p])


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_a_binary_calibrator_lowers_the_brier_score_on_new_rows(method):
    rng = np.random.default_rng(0)
    y, proba = overconfident(rng, 4000)
    fitted = ProbabilityCalibrator(method).fit(y[:2000], proba[:2000])
    after = fitted.transform(proba[2000:])
    assert np.allclose(after.sum(axis=1), 1)
    before_brier = brier_score_loss(y[2000:], proba[2000:, 1])
    assert brier_score_loss(y[2000:], after[:, 1]) < 0.9 * before_brier
    assert log_loss(y[2000:], after) < log_loss(y[2000:], proba[2000:])
    again = pickle.loads(pickle.dumps(fitted))
    assert np.array_equal(again.transform(proba[2000:]), after)


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_a_multiclass_calibrator_is_one_versus_rest_renormalised(method):
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3000, 3)) * 3
    truth = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(3, p=t) for t in truth])
    sharp = np.exp(2 * logits) / np.exp(2 * logits).sum(axis=1, keepdims=True)
    fitted = ProbabilityCalibrator(method).fit(y[:1500], sharp[:1500])
    after = fitted.transform(sharp[1500:])
    assert after.shape == (1500, 3) and np.allclose(after.sum(axis=1), 1)
    assert (after > 0).all()  # never certain: kept off 0 and 1
    assert log_loss(y[1500:], after) < log_loss(y[1500:], sharp[1500:])


def test_an_unknown_calibration_is_a_config_error_before_the_search(tmp_path):
    with pytest.raises(ConfigError, match="model.calibration='platt'"):
        ProbabilityCalibrator("platt")
    cfg = compose_train([*SMALL, "dataset=iris", "model=linear", "model.calibration=platt"])
    with pytest.raises(ConfigError, match="isotonic, sigmoid"):
        train(cfg, tmp_path)
    assert not (tmp_path / "model").exists()


def test_a_calibrated_model_round_trips_through_its_bundle(tmp_path):
    overrides = [
        *SMALL,
        "dataset=breast_cancer",
        "model=linear",
        "model.class_weight=balanced",
        "model.calibration=isotonic",
        "model.threshold=f1",
    ]
    cfg = compose_train(overrides)
    metrics = train(cfg, tmp_path)
    model = load_model(tmp_path)
    manifest = model.manifest
    assert manifest["calibration"] == "isotonic"
    assert manifest["best_params"]["calibration"] == "isotonic"
    assert isinstance(model.pipeline, Calibrated) and model.pipeline.threshold is not None
    assert manifest["decision_threshold"] == model.pipeline.threshold
    card = json.loads((tmp_path / "model" / "model_card.json").read_text())
    assert card["model_details"]["calibration"] == "isotonic"

    data = load_dataset(cfg.dataset, cfg.evaluation, cfg.seed)
    frame = data.test.drop(columns=data.target)
    X, y = data.xy(data.test)
    scored = model.score(frame)
    proba = model.pipeline.predict_proba(X)
    assert np.allclose(scored[["proba_benign", "proba_malignant"]].to_numpy(), proba)
    assert np.allclose(
        proba, model.pipeline.calibrator.transform(model.pipeline.estimator_.predict_proba(X))
    )
    labels = np.where(proba[:, 1] >= manifest["decision_threshold"], "malignant", "benign")
    assert list(scored["prediction"]) == list(labels)  # the threshold on calibrated ones
    assert np.mean(labels == np.asarray(data.classes)[y]) == pytest.approx(metrics["accuracy"])
    twin = clone(model.pipeline)  # cloning keeps the fitted calibrator
    assert twin.calibrator.transform(proba).shape == proba.shape


def test_calibration_ignored_for_regression(tmp_path):
    cfg = compose_train([*SMALL, "dataset=diabetes", "model=linear", "model.calibration=sigmoid"])
    train(cfg, tmp_path)
    model = load_model(tmp_path)
    assert model.manifest["calibration"] is None
    assert not isinstance(model.pipeline, Calibrated)


@needs_shared_data
@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_calibration_helps_a_badly_calibrated_model_on_adult(tmp_path, method):
    """A linear model with balanced class weights over-predicts the rarer >50K class;
    calibrated on its out-of-fold predictions, its test Brier score and log loss drop."""
    overrides = [
        *SMALL,
        "dataset=adult",
        "model=linear",
        "model.class_weight=balanced",
        f"model.calibration={method}",
    ]
    cfg = compose_train(overrides)
    train(cfg, tmp_path)
    model = load_model(tmp_path)
    data = load_dataset(cfg.dataset, cfg.evaluation, cfg.seed)
    X, y = data.xy(data.test)
    before = model.pipeline.estimator_.predict_proba(X)  # the refit model, uncalibrated
    after = model.pipeline.predict_proba(X)
    assert brier_score_loss(y, after[:, 1]) < 0.9 * brier_score_loss(y, before[:, 1])
    assert log_loss(y, after) < 0.9 * log_loss(y, before)
