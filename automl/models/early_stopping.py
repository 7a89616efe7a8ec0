"""Early stopping for gradient boosting, as a wrapper any boosting library fits into."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import train_test_split

from automl.config import build


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
        rows = np.arange(len(y))
        valid_rows = math.ceil(self.validation_fraction * len(y))
        counts = np.bincount(y) if classifier else None
        if counts is not None and (counts.min() < 2 or valid_rows < len(counts)):
            # too few rows to hold out a fold with every class (a class would be missing
            # from training): fit on all rows, monitored on them, so it runs to its cap
            train = valid = rows
        else:
            train, valid = train_test_split(
                rows,
                test_size=self.validation_fraction,
                random_state=self.random_state,
                stratify=y if classifier else None,
            )
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
