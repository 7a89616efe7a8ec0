"""scikit-learn scorers by name, told every class the model knows.

A probability scorer that takes ``labels`` (log loss) is given all ``n_classes`` class
indices, so rows that lack a rare class (a CV fold, a test set) are still scored against
the model's full probability columns, instead of failing on the count of columns.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any

import numpy as np
from sklearn.metrics import get_scorer


def scorer(name: str, n_classes: int | None = None) -> Any:
    """The scorer ``name``; for a classifier of ``n_classes``, with ``labels`` set where
    the metric reads probabilities and takes them."""
    found = get_scorer(name)
    if not n_classes or not reads_probabilities(found):
        return found
    if "labels" not in inspect.signature(found._score_func).parameters:
        return found
    found = copy.copy(found)
    found._kwargs = {**found._kwargs, "labels": np.arange(n_classes)}
    return found


def reads_probabilities(found: Any) -> bool:
    """Whether a scorer scores probabilities only (not labels, not decision values)."""
    method = getattr(found, "_response_method", None)
    return method == "predict_proba" or method == ("predict_proba",)
