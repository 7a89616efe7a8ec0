"""Early stopping for gradient boosting, as a wrapper any boosting library fits into."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import train_test_split


class EarlyStopping(BaseEstimator):
    """Fit ``estimator`` with early stopping on a validation fold, then refit on all rows.

    ``fit_params`` are passed to the first fit next to the validation fold (as
    ``eval_set`` or as ``eval_X``/``eval_y``, per ``eval_arguments``) (e.g. LightGBM's
    early-stopping callback, built from YAML at fit time); the best iteration is read
    from the attribute ``best_iteration`` and the refit uses that many rounds with
    ``refit_params`` (e.g. XGBoost's ``early_stopping_rounds: null``).
    """

    def __init__(
        self,
        estimator: Any,
        validation_fraction: float = 0.1,
        fit_params: dict[str, Any] | None = None,
        best_iteration: str = "best_iteration_",
        zero_based: bool = False,
        eval_arguments: str = "eval_set",
        refit_params: dict[str, Any] | None = None,
        random_state: int | None = None,
    ) -> None:
        self.estimator = estimator
        self.validation_fraction = validation_fraction
        self.fit_params = fit_params
        self.best_iteration = best_iteration
        self.zero_based = zero_based
        self.eval_arguments = eval_arguments
        self.refit_params = refit_params
        self.random_state = random_state

    def fit(self, X, y):
        from automl.config import build

        classifier = hasattr(self.estimator, "predict_proba")
        fit_y = np.asarray(y)
        stratify = fit_y if classifier and np.min(np.bincount(fit_y)) >= 2 else None
        X_tr, X_va, y_tr, y_va = train_test_split(
            X,
            fit_y,
            test_size=self.validation_fraction,
            random_state=self.random_state,
            stratify=stratify,
        )
        probe = clone(self.estimator)
        if self.eval_arguments == "eval_set":
            validation = {"eval_set": [(X_va, y_va)]}
        else:  # LightGBM >= 4.7: eval_X / eval_y
            validation = {"eval_X": (X_va,), "eval_y": (y_va,)}
        probe.fit(X_tr, y_tr, **validation, **build(self.fit_params or {}))
        best = getattr(probe, self.best_iteration, None)
        if best is None:
            self.best_iteration_ = probe.get_params()["n_estimators"]
        else:
            self.best_iteration_ = max(1, int(best) + int(self.zero_based))
        final = clone(self.estimator).set_params(
            n_estimators=self.best_iteration_, **(self.refit_params or {})
        )
        self.estimator_ = final.fit(X, fit_y)
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
