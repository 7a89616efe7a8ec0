"""Booster-specific calls the server makes, chosen by config (``fast_path.predictors``,
``contributions``): each takes the fitted estimator (inside any wrapper) and a float64 matrix.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def lightgbm_predict(estimator: Any, X: np.ndarray, classifier: bool) -> np.ndarray:
    """What ``predict_proba``/``predict`` return, from the booster with one thread.

    The scikit-learn wrapper checks its input first (about 1 ms a call); the booster gives
    the same numbers (binary: ``[1 - p, p]``, as the wrapper stacks them).
    """
    result = estimator.booster_.predict(X, num_threads=1)
    if classifier and result.ndim == 1:
        return np.vstack((1.0 - result, result)).transpose()
    return result


def lightgbm_contributions(estimator: Any, X: np.ndarray) -> np.ndarray:
    """SHAP values (last column: the bias), ``(rows, classes, features + 1)`` for multiclass."""
    values = estimator.booster_.predict(X, pred_contrib=True, num_threads=1)
    classes = len(getattr(estimator, "classes_", None) if hasattr(estimator, "classes_") else [])
    if classes > 2:
        return values.reshape(len(X), classes, -1)
    return values


def xgboost_contributions(estimator: Any, X: np.ndarray) -> np.ndarray:
    """SHAP values from XGBoost (last column: the bias), per class for multiclass."""
    import xgboost

    return estimator.get_booster().predict(xgboost.DMatrix(X), pred_contribs=True)
