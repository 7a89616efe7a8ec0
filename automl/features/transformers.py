"""Feature transformers that scikit-learn lacks; each is a plain sklearn transformer."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin


def as_frame(X: object, columns: object = None) -> pd.DataFrame:
    """X as a DataFrame (ColumnTransformer passes frames; arrays get numbered columns)."""
    return X if isinstance(X, pd.DataFrame) else pd.DataFrame(X, columns=columns)


class FrameInput:
    """Fits on a DataFrame or an array (e.g. after an imputer): columns remembered for
    ``transform``, scikit-learn's ``feature_names_in_`` only for a frame (as its own
    transformers do, so ``get_feature_names_out`` takes the names the step before gives)."""

    def fit_frame(self, X: object) -> pd.DataFrame:
        frame = as_frame(X)
        self.n_features_in_ = frame.shape[1]
        self.columns_ = list(frame.columns)
        if isinstance(X, pd.DataFrame):
            self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        return frame

    def fitted_columns(self) -> list:
        """The columns seen in fit (bundles saved before ``columns_``: their names)."""
        columns = getattr(self, "columns_", None)
        return list(self.feature_names_in_) if columns is None else columns

    def frame(self, X: object) -> pd.DataFrame:
        return as_frame(X, self.fitted_columns())


class RareCategoryGrouper(FrameInput, OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Replace categories seen in less than ``min_frequency`` of rows (and unseen ones)."""

    def __init__(self, min_frequency: float = 0.01, other: str = "__rare__") -> None:
        self.min_frequency = min_frequency
        self.other = other

    def fit(self, X, y=None):
        frame = self.fit_frame(X)
        self.kept_ = {
            col: set(freq[freq >= self.min_frequency].index)
            for col, freq in ((c, frame[c].value_counts(normalize=True)) for c in frame.columns)
        }
        return self

    def transform(self, X):
        frame = self.frame(X).copy()
        for col in frame.columns:
            series = frame[col].astype(object)
            keep = series.isin(self.kept_[col]) | series.isna()
            frame[col] = series.where(keep, self.other)
        return frame


class NativeCategorical(FrameInput, OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Text columns to pandas ``category`` with the categories seen in fit (unseen -> NaN).

    For models that handle categoricals themselves (LightGBM, XGBoost, hist GBM).
    """

    def fit(self, X, y=None):
        frame = self.fit_frame(X)
        self.categories_ = {
            col: sorted(frame[col].dropna().unique().tolist())
            for col in frame.columns
            if not pd.api.types.is_numeric_dtype(frame[col])
        }
        return self

    def transform(self, X):
        frame = self.frame(X).copy()
        for col, cats in self.categories_.items():
            known = frame[col].where(frame[col].isin(cats))
            frame[col] = pd.Categorical(known, categories=cats)
        return frame


class SignedLog(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """sign(x) * log1p(|x|): tames heavy tails and keeps zeros and negatives."""

    def fit(self, X, y=None):
        self.n_features_in_ = np.asarray(X).shape[1]
        if isinstance(X, pd.DataFrame):
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        return self

    def transform(self, X):
        values = np.asarray(X, dtype=float)
        return np.sign(values) * np.log1p(np.abs(values))


class DateTimeExpander(FrameInput, TransformerMixin, BaseEstimator):
    """Date-time columns to numeric parts (year, month, day, weekday, hour, ...)."""

    def __init__(self, parts: tuple[str, ...] = ("year", "month", "day", "day_of_week", "hour")):
        self.parts = parts

    def fit(self, X, y=None):
        self.fit_frame(X)
        return self

    def transform(self, X):
        frame = self.frame(X)
        out = {}
        for col in frame.columns:
            stamp = pd.to_datetime(frame[col], errors="coerce")
            for part in self.parts:
                out[f"{col}_{part}"] = getattr(stamp.dt, part).astype(float)
        return pd.DataFrame(out, index=frame.index)

    def get_feature_names_out(self, input_features=None):
        names = self.fitted_columns() if input_features is None else input_features
        return np.asarray([f"{c}_{p}" for c in names for p in self.parts], dtype=object)
