"""The reference profile stored in a bundle: per-column statistics of the training data
and the distribution of the training predictions, so drift can be computed later without
reloading the training data."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def numeric_profile(values: pd.Series, bins: int) -> dict[str, Any]:
    """Missing rate, moments, quantile bin edges, and the training counts and mean value
    per bin (drift distances place each bin's share at its mean)."""
    present = values.dropna().to_numpy(dtype=float)
    profile: dict[str, Any] = {"kind": "numeric", "missing_rate": float(values.isna().mean())}
    if len(present) == 0:
        return profile | {"edges": [], "counts": []}
    edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)))
    inner = edges[1:-1]  # bins are open-ended beyond the training range
    bucket = np.searchsorted(inner, present, side="right")
    counts = np.bincount(bucket, minlength=len(inner) + 1)
    sums = np.bincount(bucket, weights=present, minlength=len(inner) + 1)
    return profile | {
        "mean": float(present.mean()),
        "std": float(present.std()),
        "min": float(present.min()),
        "max": float(present.max()),
        "edges": [float(e) for e in inner],
        "counts": [int(c) for c in counts],
        "means": [float(s / c) if c else 0.0 for s, c in zip(sums, counts, strict=True)],
    }


def categorical_profile(values: pd.Series, top: int) -> dict[str, Any]:
    """Missing rate and the frequency of the ``top`` commonest categories (rest as other)."""
    shares = values.dropna().astype(str).value_counts(normalize=True)
    return {
        "kind": "categorical",
        "missing_rate": float(values.isna().mean()),
        "categories": int(len(shares)),
        "frequencies": {str(k): float(v) for k, v in shares.head(top).items()},
        "other": float(shares.iloc[top:].sum()),
    }


def build_profile(
    features: pd.DataFrame,
    predictions: np.ndarray,
    classes: list[str] | None,
    bins: int = 10,
    top: int = 50,
) -> dict[str, Any]:
    """The profile of validated training ``features`` and the model's ``predictions``
    on them (probabilities per class, or values for regression)."""
    columns = {
        col: numeric_profile(features[col], bins)
        if pd.api.types.is_numeric_dtype(features[col])
        else categorical_profile(features[col], top)
        for col in features.columns
    }
    if classes is None:
        prediction = numeric_profile(pd.Series(predictions), bins)
    else:
        labels = np.asarray(classes, dtype=object)[np.argmax(predictions, axis=1)]
        prediction = categorical_profile(pd.Series(labels), top)
        prediction["mean_proba"] = {
            c: float(p) for c, p in zip(classes, predictions.mean(axis=0), strict=True)
        }
        if len(classes) == 2:
            prediction["positive_proba"] = numeric_profile(pd.Series(predictions[:, 1]), bins)
    return {"rows": int(len(features)), "columns": columns, "prediction": prediction}
