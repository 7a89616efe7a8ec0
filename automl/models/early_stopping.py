"""Early stopping for gradient boosting, as a wrapper any boosting library fits into."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, clone

from automl.config import build
from automl.data.splits import RowKeys, Splitter
from automl.errors import DataError


class EarlyStopping(BaseEstimator):
    """Fit ``estimator`` on all rows but a validation fold that decides when to stop.

    The validation fold goes to ``fit`` as ``eval_set`` or as ``eval_X``/``eval_y``
    (``eval_arguments``), next to ``fit_params`` (e.g. LightGBM's early-stopping
    callback, built from YAML at fit time). The fitted booster predicts with its best
    iteration.
    """

    def __init__(
        self,
        estimator: Any,
        validation_fraction: float = 0.1,
        fit_params: dict[str, Any] | None = None,
        eval_arguments: str = "eval_set",
        random_state: int | None = None,
    ) -> None:
        self.estimator = estimator
        self.validation_fraction = validation_fraction
        self.fit_params = fit_params
        self.eval_arguments = eval_arguments
        self.random_state = random_state

    def fit(self, X, y, sample_weight=None):
        y = np.asarray(y)
        classifier = hasattr(self.estimator, "predict_proba")
        # the validation fold drawn as the test rows are: stratified, a class too rare to
        # be split kept in training (so the booster learns every class)
        splitter = Splitter(seed=self.random_state)
        try:
            train, valid = splitter.holdout(y, RowKeys(), self.validation_fraction, classifier)
        except (DataError, ValueError):  # too few rows to hold any out: monitored on all
            train = valid = np.arange(len(y))
        X_tr, X_va = _rows(X, train), _rows(X, valid)
        y_tr, y_va = y[train], y[valid]
        if self.eval_arguments == "eval_set":
            validation = {"eval_set": [(X_va, y_va)]}
        else:  # LightGBM >= 4.7: eval_X / eval_y
            validation = {"eval_X": (X_va,), "eval_y": (y_va,)}
        if sample_weight is not None:
            validation["sample_weight"] = np.asarray(sample_weight)[train]
        self.estimator_ = clone(self.estimator)
        self.estimator_.fit(X_tr, y_tr, **validation, **build(self.fit_params or {}))
        self.classes_ = getattr(self.estimator_, "classes_", None)
        self.n_features_in_ = getattr(self.estimator_, "n_features_in_", None)
        return self

    def predict(self, X):
        return self.estimator_.predict(X)

    def predict_proba(self, X):
        return self.estimator_.predict_proba(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        inner = self.estimator.__sklearn_tags__()
        tags.estimator_type = inner.estimator_type
        tags.classifier_tags = inner.classifier_tags
        tags.regressor_tags = inner.regressor_tags
        return tags

    @property
    def feature_importances_(self):
        return self.estimator_.feature_importances_


def _rows(X, rows: np.ndarray):
    """Rows of a DataFrame or an array, by position."""
    return X.iloc[rows] if hasattr(X, "iloc") else X[rows]
