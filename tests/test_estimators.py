"""``automl.AutoMLClassifier`` / ``AutoMLRegressor``: scikit-learn's own estimator checks
(the whole list is slow; a representative few run by default), and use in a Pipeline,
``cross_val_score`` and with DataFrames."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_diabetes, load_iris, load_wine
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import estimator_checks_generator

from automl import AutoMLClassifier, AutoMLRegressor

QUICK = {
    "model": "lgbm",
    "time_budget": None,
    "n_trials": 1,
    "overrides": ("evaluation.cv_folds=2",),
}
# scikit-learn checks expected to fail, with why: none. The one check skipped is
# check_array_api_input, which runs only with SCIPY_ARRAY_API=1 (no array-API inputs here).
EXPECTED_FAILED: dict[str, str] = {}
# the checks the default run keeps (the rest are in the slow set)
FAST_CHECKS = {
    "check_no_attributes_set_in_init",
    "check_parameters_default_constructible",
    "check_get_params_invariance",
    "check_set_params",
    "check_dont_overwrite_parameters",
    "check_estimators_nan_inf",
    "check_n_features_in",
    "check_fit2d_predict1d",
    "check_classifiers_classes",
    "check_supervised_y_2d",
    "check_requires_y_none",
    "check_fit2d_1sample",
    "check_estimators_unfitted",
    "check_estimators_empty_data_messages",
}


@pytest.mark.parametrize("data", [pytest.param("arrays", marks=pytest.mark.slow), "frame"])
def test_classifier_in_a_pipeline_and_cross_val_score(data):
    X, y = load_iris(return_X_y=True, as_frame=data == "frame")
    labels = np.asarray(["setosa", "versicolor", "virginica"])[y]
    pipeline = make_pipeline(StandardScaler().set_output(transform="pandas"),
                             AutoMLClassifier(**QUICK))  # fmt: skip
    scores = cross_val_score(pipeline, X, labels, cv=3)
    assert scores.mean() > 0.85, scores
    fitted = pipeline.fit(X, labels)[-1]
    assert list(fitted.classes_) == ["setosa", "versicolor", "virginica"]
    proba = pipeline.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert set(pipeline.predict(X)) <= set(labels)
    assert fitted.metrics_["accuracy"] > 0.8 and len(fitted.leaderboard_) == 1


def test_regressor_scores_and_clones_with_its_parameters():
    X, y = load_diabetes(return_X_y=True)
    model = AutoMLRegressor(model="linear", time_budget=None, n_trials=1, seed=7)
    twin = clone(model)
    assert twin.get_params() == model.get_params() and not hasattr(twin, "model_")
    model.fit(X[:350], y[:350])
    assert model.score(X[350:], y[350:]) > 0.3
    assert model.predict(X[:3]).dtype == np.float64 and model.n_features_in_ == 10


def test_integer_labels_come_back_as_given_and_unseen_rows_are_scored():
    X, y = load_wine(return_X_y=True, as_frame=True)
    model = AutoMLClassifier(**QUICK).fit(X, y + 10)
    assert list(model.classes_) == [10, 11, 12] and model.predict(X.head(4)).dtype == y.dtype
    far = X.head(2) * 100  # far outside the training ranges: still a prediction
    assert len(model.predict(far)) == 2


def test_a_single_class_and_inconsistent_lengths_are_clear_errors():
    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match="one class"):
        AutoMLClassifier(**QUICK).fit(X[:40], y[:40])
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        AutoMLClassifier(**QUICK).fit(X[:40], y[:30])
    with pytest.raises(ValueError, match="Input y contains infinity"):
        AutoMLRegressor(**QUICK).fit(X, np.where(y == 1, np.inf, y))


def scikit_learn_checks() -> list:
    """scikit-learn's checks of both estimators as pytest parameters: those in
    :data:`FAST_CHECKS` by default, the rest marked slow; the expected failures xfail."""
    params = []
    for estimator in (AutoMLClassifier(**QUICK), AutoMLRegressor(**QUICK)):
        checks = estimator_checks_generator(
            estimator, expected_failed_checks=EXPECTED_FAILED, mark="xfail"
        )
        for pair in checks:
            check = pair.values[1] if hasattr(pair, "values") else pair[1]
            name = getattr(check, "func", check).__name__
            marks = list(getattr(pair, "marks", ()))
            if name not in FAST_CHECKS:
                marks.append(pytest.mark.slow)
            params.append(
                pytest.param(*(pair.values if hasattr(pair, "values") else pair), marks=marks,
                             id=f"{type(estimator).__name__}-{name}")
            )  # fmt: skip
    return params


@pytest.mark.parametrize(("estimator", "check"), scikit_learn_checks())
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)
