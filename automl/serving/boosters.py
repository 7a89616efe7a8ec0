"""Booster-specific calls of the server's fast path, chosen by config
(``fast_path.predictors``): each takes the fitted estimator (inside any wrapper) and a
float64 matrix. (Contributions are ``automl.bundle.explain``'s, for every model.)
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
