"""Encoding, date-time, interaction and selection steps, and column selectors for blocks;
each step a plain sklearn transformer.

Categorical and date-time steps take frames or arrays (``FrameInput``); numeric steps
validate their input as scikit-learn's own transformers do. Supervised steps pick the
classification or regression variant of their score or model from the type of ``y``.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from functools import partial
from itertools import combinations
from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction import FeatureHasher
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.feature_selection import (
    SelectFromModel,
    SelectKBest,
    SelectorMixin,
    chi2,
    f_classif,
    f_regression,
    mutual_info_classif,
    mutual_info_regression,
)
from sklearn.impute import SimpleImputer
from sklearn.inspection import permutation_importance
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import MinMaxScaler, PolynomialFeatures
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from automl.data.contract import is_free_text
from automl.features.transformers import FrameInput

MISSING = "__missing__"
# |denominator| below this makes a ratio 0 (TopKInteractions, kind="ratio")
RATIO_EPS = 1e-9
# period of each date-time part (CyclicalDateTime)
PERIODS = {"month": 12.0, "day_of_week": 7.0, "hour": 24.0, "day_of_year": 365.25, "minute": 60.0}
# score name -> (classification, regression) score function; None: not for that task
SCORES = {
    "f_test": (f_classif, f_regression),
    "anova": (f_classif, f_regression),
    "mutual_info": (mutual_info_classif, mutual_info_regression),
    "chi2": (chi2, None),
}


# --- helpers ---------------------------------------------------------------------------


def _names_in(est: BaseEstimator, input_features: Any = None) -> np.ndarray:
    """Input names as scikit-learn gives them: ``input_features``, ``feature_names_in_``
    or ``x0, x1, ...``."""
    check_is_fitted(est, "n_features_in_")
    fitted = getattr(est, "feature_names_in_", None)
    if input_features is None:
        if fitted is not None:
            return np.asarray(fitted, dtype=object)
        return np.asarray([f"x{i}" for i in range(est.n_features_in_)], dtype=object)
    names = np.asarray(input_features, dtype=object)
    if len(names) != est.n_features_in_:
        raise ValueError(
            f"input_features has {len(names)} names, {type(est).__name__} was fitted on "
            f"{est.n_features_in_} features"
        )
    if fitted is not None and not np.array_equal(names, fitted):
        raise ValueError("input_features is not equal to feature_names_in_")
    return names


def _task(y: Any, owner: str) -> str:
    """The task, "classification" or "regression", from ``type_of_target``; a float target
    with more than two integral values (e.g. diabetes) is regression, as the framework
    encodes class labels as ints and regression targets as floats."""
    if y is None:
        raise ValueError(f"{owner} requires y to be passed, but the target y is None")
    kind = type_of_target(y, input_name="y", raise_unknown=True)
    if kind == "binary":
        return "classification"
    if kind == "multiclass":
        floating = np.issubdtype(np.asarray(y).dtype, np.floating)
        return "regression" if floating else "classification"
    if kind == "continuous":
        return "regression"
    raise ValueError(f"{owner} needs a binary, multiclass or continuous target, not {kind!r}")


def _score_func(score: str, task: str, random_state: int | None, owner: str, allowed: tuple):
    if score not in allowed:
        raise ValueError(f"{owner}: criterion must be one of {list(allowed)}, not {score!r}")
    func = SCORES[score][task == "regression"]
    if func is None:
        raise ValueError(
            f"{owner}: criterion={score!r} works only for classification targets; this target "
            f"is continuous (regression): use criterion='anova' or criterion='mutual_info'"
        )
    if score == "mutual_info":
        return partial(func, random_state=random_state)
    return func


def _count(value: Any, n: int, param: str, owner: str) -> int:
    """How many of ``n`` features to keep: an int count (capped at ``n``) or a float share
    in (0, 1]; at least one."""
    if isinstance(value, Integral) and not isinstance(value, bool):
        if value < 1:
            raise ValueError(f"{owner}: {param} must be at least 1, not {value}")
        return min(int(value), n)
    if isinstance(value, Real) and not isinstance(value, bool) and 0 < value <= 1:
        return max(1, min(n, math.floor(value * n + 0.5)))
    raise ValueError(f"{owner}: {param} must be an int >= 1 or a float in (0, 1], not {value!r}")


def _finite_copy(X: np.ndarray) -> np.ndarray:
    """X with missing values median-imputed, for scoring only (never passed on)."""
    if not np.isnan(X).any():
        return X
    return SimpleImputer(strategy="median", keep_empty_features=True).fit_transform(X)


def _lightgbm(task: str, random_state: int, n_estimators: int = 100) -> BaseEstimator:
    from lightgbm import LGBMClassifier, LGBMRegressor

    model = LGBMClassifier if task == "classification" else LGBMRegressor
    return model(n_estimators=n_estimators, verbose=-1, n_jobs=1, random_state=random_state)


def _categories(series: pd.Series) -> pd.Series:
    """Values as objects, missing ones as ``MISSING``."""
    return series.astype(object).where(series.notna(), MISSING)


class _Selector(SelectorMixin, BaseEstimator):
    """Shared by the selectors: the kept columns are ``support_``; NaN passes through."""

    def _get_support_mask(self) -> np.ndarray:
        check_is_fitted(self, "support_")
        return self.support_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags


class _Supervised:
    """Needs y in fit; missing values allowed."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.input_tags.allow_nan = True
        return tags


# --- categorical and date-time ---------------------------------------------------------


class OneHot(FrameInput, TransformerMixin, BaseEstimator):
    """One-hot columns per category, counted and looked up by pandas' hash tables.

    Missing values are the category ``missing``. Categories seen in fewer than
    ``min_frequency`` of the training rows (a share, or a count when an int), and all but
    the ``max_categories - 1`` commonest, are grouped into one ``<col>_rare`` column, which
    also takes categories unseen in training (``handle_unknown="rare"``); ``"ignore"`` gives
    them all zeros, ``"error"`` refuses them. The grouping is scikit-learn's
    ``OneHotEncoder(handle_unknown="infrequent_if_exist")`` after a constant imputer, ties
    included, without its per-value Python counting.
    """

    def __init__(
        self,
        min_frequency: float | int | None = None,
        max_categories: int | None = None,
        handle_unknown: str = "rare",
        missing: str = MISSING,
    ) -> None:
        self.min_frequency = min_frequency
        self.max_categories = max_categories
        self.handle_unknown = handle_unknown
        self.missing = missing

    def fit(self, X, y=None):
        if self.handle_unknown not in ("rare", "ignore", "error"):
            raise ValueError(
                "OneHot: handle_unknown must be 'rare', 'ignore' or 'error', "
                f"not {self.handle_unknown!r}"
            )
        frame = self.fit_frame(X)
        self.categories_, self.rare_, self.slots_ = [], [], []
        for col in frame.columns:
            counts = self._filled(frame[col]).value_counts(sort=False)
            order = sorted(range(len(counts)), key=lambda i: str(counts.index[i]))
            categories = pd.Index(counts.index[order], dtype=object)
            rare = self._rare(counts.to_numpy()[order], len(frame))
            # output column of each category (rare ones share the last), then of an unseen one
            slots = np.cumsum(~rare) - 1
            slots[rare] = (~rare).sum()
            unseen = (~rare).sum() if rare.any() and self.handle_unknown == "rare" else -1
            self.categories_.append(categories)
            self.rare_.append(rare)
            self.slots_.append(np.append(slots, unseen))
        return self

    def _filled(self, series: pd.Series) -> pd.Series:
        if isinstance(series.dtype, pd.CategoricalDtype):
            series = series.astype(object)
        return series.fillna(self.missing)

    def _rare(self, counts: np.ndarray, rows: int) -> np.ndarray:
        """Which categories (in sorted order, with their counts) are grouped as rare."""
        rare = np.zeros(len(counts), dtype=bool)
        if isinstance(self.min_frequency, Integral):
            rare = counts < self.min_frequency
        elif isinstance(self.min_frequency, Real):
            rare = counts < rows * self.min_frequency
        kept = len(counts) - rare.sum() + 1
        if self.max_categories is not None and self.max_categories < kept:
            frequent = self.max_categories - 1
            smallest = np.argsort(counts, kind="mergesort")
            rare[smallest if frequent == 0 else smallest[:-frequent]] = True
        return rare

    def transform(self, X) -> np.ndarray:
        check_is_fitted(self, "categories_")
        frame = self.frame(X)
        widths = [int(s.max()) + 1 for s in self.slots_]
        out = np.zeros((len(frame), sum(widths)), dtype=float)
        rows = np.arange(len(frame))
        offset = 0
        for col, categories, slots, width in zip(
            frame.columns, self.categories_, self.slots_, widths, strict=True
        ):
            position = categories.get_indexer(self._filled(frame[col]))
            if self.handle_unknown == "error" and (position < 0).any():
                value = frame[col].iloc[int(np.flatnonzero(position < 0)[0])]
                raise ValueError(f"OneHot: column {col!r} has an unknown category {value!r}")
            slot = slots[position]  # position -1: the unseen slot, last in slots
            hit = slot >= 0
            out[rows[hit], offset + slot[hit]] = 1.0
            offset += width
        return out

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        names = []
        for col, categories, rare, slots in zip(
            _names_in(self, input_features), self.categories_, self.rare_, self.slots_
        ):
            names += [f"{col}_{c}" for c in categories[~rare]]
            if slots.max() >= (~rare).sum():
                names.append(f"{col}_rare")
        return np.asarray(names, dtype=object)


class FrequencyEncoder(FrameInput, TransformerMixin, BaseEstimator):
    """Categories to their frequency in the training rows (unseen and rare ones to 0).

    ``normalize=True`` gives the share of training rows, ``False`` the count; categories
    seen fewer than ``min_count`` times count as unseen. Missing values are a category of
    their own. One float column ``<col>_freq`` per input column.
    """

    def __init__(self, normalize: bool = True, min_count: int = 1) -> None:
        self.normalize = normalize
        self.min_count = min_count

    def fit(self, X, y=None):
        if not isinstance(self.min_count, Integral) or self.min_count < 1:
            raise ValueError(
                f"FrequencyEncoder: min_count must be an int >= 1, not {self.min_count!r}"
            )
        frame = self.fit_frame(X)
        self.frequencies_ = {}
        for col in frame.columns:
            counts = _categories(frame[col]).value_counts()
            counts = counts[counts >= self.min_count].astype(float)
            if self.normalize:
                counts = counts / max(len(frame), 1)
            self.frequencies_[col] = counts.to_dict()
        return self

    def transform(self, X) -> np.ndarray:
        check_is_fitted(self, "frequencies_")
        frame = self.frame(X)
        out = np.zeros((len(frame), len(self.frequencies_)), dtype=float)
        for i, (col, freq) in enumerate(self.frequencies_.items()):
            mapped = _categories(frame[col]).map(freq)
            out[:, i] = pd.to_numeric(mapped, errors="coerce").fillna(0.0).to_numpy(dtype=float)
        return out

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        return np.asarray([f"{c}_freq" for c in _names_in(self, input_features)], dtype=object)


class HashingEncoder(FrameInput, TransformerMixin, BaseEstimator):
    """High-cardinality categories hashed into ``n_features`` columns (FeatureHasher).

    Each row hashes the tokens ``"<col>=<value>"`` (missing: ``"<col>=__missing__"``), so
    unseen categories need no special case. Dense float output ``hash_0 .. hash_{n-1}``.
    """

    def __init__(self, n_features: int = 64, alternate_sign: bool = False) -> None:
        self.n_features = n_features
        self.alternate_sign = alternate_sign

    def fit(self, X, y=None):
        self.fit_frame(X)
        self.hasher_ = FeatureHasher(
            n_features=self.n_features, input_type="string", alternate_sign=self.alternate_sign
        ).fit()
        return self

    def transform(self, X) -> np.ndarray:
        check_is_fitted(self, "hasher_")
        frame = self.frame(X)
        columns = [
            [f"{col}={value}" for value in _categories(frame[col])] for col in self.fitted_columns()
        ]
        rows = zip(*columns) if columns else ([] for _ in range(len(frame)))
        return self.hasher_.transform(rows).toarray()

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        _names_in(self, input_features)
        return np.asarray([f"hash_{i}" for i in range(self.n_features)], dtype=object)


class CyclicalDateTime(FrameInput, TransformerMixin, BaseEstimator):
    """Date-time parts as sin/cos on their period, so December sits next to January.

    Parts and periods: month 12, day_of_week 7, hour 24, day_of_year 365.25, minute 60.
    A missing or unparseable date (NaT) gives 0 for both sin and cos: the centre of the
    circle, distinct from every real date. Columns ``<col>_<part>_sin`` / ``_cos``.
    """

    def __init__(
        self, parts: tuple[str, ...] = ("month", "day_of_week", "hour", "day_of_year")
    ) -> None:
        self.parts = parts

    def fit(self, X, y=None):
        unknown = [p for p in self.parts if p not in PERIODS]
        if unknown or not self.parts:
            raise ValueError(
                f"CyclicalDateTime: unknown parts {unknown}; choose from {list(PERIODS)}"
            )
        self.fit_frame(X)
        return self

    def transform(self, X) -> np.ndarray:
        check_is_fitted(self, "n_features_in_")
        frame = self.frame(X)
        out = []
        for col in self.fitted_columns():
            stamp = pd.to_datetime(frame[col], errors="coerce")
            for part in self.parts:
                value = getattr(stamp.dt, part).to_numpy(dtype=float, na_value=np.nan)
                angle = 2 * np.pi * value / PERIODS[part]
                out.append(np.nan_to_num(np.sin(angle), nan=0.0))  # NaT -> 0
                out.append(np.nan_to_num(np.cos(angle), nan=0.0))
        if not out:
            return np.zeros((len(frame), 0))
        return np.column_stack(out)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        return np.asarray(
            [
                f"{c}_{p}_{f}"
                for c in _names_in(self, input_features)
                for p in self.parts
                for f in ("sin", "cos")
            ],
            dtype=object,
        )


# --- free text ---------------------------------------------------------------------------


class StringColumns:
    """Column selector for a block: the string and category columns that hold free text
    (``free_text=True``) or the rest, categories (``False``), by the rule ingest uses
    (:func:`automl.data.contract.is_free_text`: many distinct values, long, several words).

    Evaluated once when the pipeline is fitted; the chosen columns are then fixed.
    """

    def __init__(
        self,
        free_text: bool = False,
        max_categories: int = 50,
        min_length: float = 30,
        min_words: float = 3,
    ) -> None:
        self.free_text = free_text
        self.max_categories = max_categories
        self.min_length = min_length
        self.min_words = min_words

    def __call__(self, X: pd.DataFrame) -> list[str]:
        strings = X.select_dtypes(include=["string", "category"]).columns
        rule = (self.max_categories, self.min_length, self.min_words)
        return [c for c in strings if is_free_text(X[c], *rule) == self.free_text]

    def __repr__(self) -> str:
        return f"StringColumns(free_text={self.free_text})"


class OtherColumns:
    """Column selector for a block: every column that none of the ``exclude`` selectors
    picks, in the frame's order (e.g. all but the date-times and the free text).

    Evaluated once when the pipeline is fitted; the chosen columns are then fixed.
    """

    def __init__(self, exclude: list[Any]) -> None:
        self.exclude = exclude

    def __call__(self, X: pd.DataFrame) -> list[str]:
        taken = {c for selector in self.exclude for c in selector(X)}
        return [c for c in X.columns if c not in taken]

    def __repr__(self) -> str:
        return f"OtherColumns(exclude={self.exclude!r})"


class TextEncoder(FrameInput, TransformerMixin, BaseEstimator):
    """Free-text columns to numbers, each column on its own: TF-IDF of its words and word
    pairs (at most ``max_features`` terms in at least ``min_df`` rows, fewer rows when
    none qualify), reduced by truncated SVD to ``n_components`` (capped by the terms and
    rows; ``None``: the TF-IDF terms themselves). Missing text is empty text.

    Columns ``<col>_svd<i>``, or ``<col>=<term>`` without SVD; a column with no word at
    all gives one zero column ``<col>_empty``.
    """

    def __init__(
        self,
        max_features: int = 5000,
        n_components: int | None = 16,
        ngram_range: tuple[int, int] = (1, 2),
        min_df: int = 2,
        random_state: int | None = 0,
    ) -> None:
        self.max_features = max_features
        self.n_components = n_components
        self.ngram_range = ngram_range
        self.min_df = min_df
        self.random_state = random_state

    def fit(self, X, y=None):
        frame = self.fit_frame(X)
        self.encoders_ = {col: self._fit_column(_documents(frame[col])) for col in frame}
        return self

    def _fit_column(self, documents: list[str]) -> tuple[Any, Any]:
        """The column's (vectorizer, svd): svd None without SVD, both None without words."""
        for min_df in dict.fromkeys((self.min_df, 1)):
            vectorizer = TfidfVectorizer(
                max_features=self.max_features,
                ngram_range=tuple(self.ngram_range),
                min_df=min_df,
                sublinear_tf=True,
                strip_accents="unicode",
                dtype=np.float64,
            )
            try:
                terms = vectorizer.fit_transform(documents)
            except ValueError:  # no term in min_df rows (or no word at all)
                continue
            components = min(self.n_components or 0, terms.shape[1] - 1, terms.shape[0] - 1)
            if self.n_components is None or components < 1:
                return vectorizer, None
            svd = TruncatedSVD(components, random_state=self.random_state)
            return vectorizer, svd.fit(terms)
        return None, None

    def transform(self, X) -> np.ndarray:
        check_is_fitted(self, "encoders_")
        frame = self.frame(X)
        blocks = []
        for col, (vectorizer, svd) in self.encoders_.items():
            if vectorizer is None:
                blocks.append(np.zeros((len(frame), 1)))
                continue
            terms = vectorizer.transform(_documents(frame[col]))
            blocks.append(terms.toarray() if svd is None else svd.transform(terms))
        return np.hstack(blocks) if blocks else np.zeros((len(frame), 0))

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        _names_in(self, input_features)
        names: list[str] = []
        for col, (vectorizer, svd) in self.encoders_.items():
            if vectorizer is None:
                names.append(f"{col}_empty")
            elif svd is None:
                names += [f"{col}={term}" for term in vectorizer.get_feature_names_out()]
            else:
                names += [f"{col}_svd{i}" for i in range(svd.n_components)]
        return np.asarray(names, dtype=object)


def _documents(series: pd.Series) -> list[str]:
    """A text column's values as documents (missing: empty)."""
    return series.astype(object).where(series.notna(), "").astype(str).tolist()


# --- numeric: interactions -------------------------------------------------------------


class TopKInteractions(_Supervised, TransformerMixin, BaseEstimator):
    """Adds pairwise products or ratios of the ``k`` columns scored best against y.

    Columns are ranked by a univariate score (``"f_test"``: ANOVA F / F-regression, or
    ``"mutual_info"``) chosen by the target type. Output: all input columns, then one
    column per pair of the top ``k`` (in input order): ``<a>*<b>`` (``kind="product"``) or
    ``<a>/<b>`` (``kind="ratio"``, 0 where ``|b| < 1e-9``). Missing values are not imputed
    (they stay missing in the pairs that use them); no output is ever infinite.
    """

    def __init__(
        self,
        k: int = 5,
        kind: str = "product",
        criterion: str = "f_test",
        random_state: int | None = 0,
    ) -> None:
        self.k = k
        self.kind = kind
        self.criterion = criterion
        self.random_state = random_state

    def fit(self, X, y=None):
        owner = type(self).__name__
        if self.kind not in ("product", "ratio"):
            raise ValueError(f"{owner}: kind must be 'product' or 'ratio', not {self.kind!r}")
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan")
        score = _score_func(
            self.criterion, _task(y, owner), self.random_state, owner, ("f_test", "mutual_info")
        )
        if not isinstance(self.k, Integral) or isinstance(self.k, bool) or self.k < 1:
            raise ValueError(f"{owner}: k must be an int >= 1, not {self.k!r}")
        self.selector_ = SelectKBest(score, k=min(self.k, X.shape[1])).fit(_finite_copy(X), y)
        self.top_ = self.selector_.get_support(indices=True)
        if self.kind == "product":
            self.poly_ = PolynomialFeatures(degree=2, interaction_only=True, include_bias=False)
            self.poly_.fit(np.zeros((1, len(self.top_))))
            # the product columns, in PolynomialFeatures' output order
            pairs = [np.flatnonzero(p) for p in self.poly_.powers_ if p.sum() == 2]
        else:
            pairs = list(combinations(range(len(self.top_)), 2))
        self.pairs_ = [(int(self.top_[a]), int(self.top_[b])) for a, b in pairs]
        return self

    def transform(self, X) -> np.ndarray:
        check_is_fitted(self, "pairs_")
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan", reset=False)
        if not self.pairs_:
            extra = np.empty((len(X), 0))
        elif self.kind == "product":
            # PolynomialFeatures refuses NaN: multiply a zero-filled copy, then put NaN back
            top = np.nan_to_num(X[:, self.top_], nan=0.0)
            extra = self.poly_.transform(top)[:, len(self.top_) :]
            nan = np.isnan(X)
            extra[np.column_stack([nan[:, a] | nan[:, b] for a, b in self.pairs_])] = np.nan
        else:
            extra = np.empty((len(X), len(self.pairs_)))
            for i, (a, b) in enumerate(self.pairs_):
                small = np.abs(X[:, b]) < RATIO_EPS
                extra[:, i] = np.where(small, 0.0, X[:, a] / np.where(small, 1.0, X[:, b]))
        biggest = np.finfo(np.float64).max
        extra = np.nan_to_num(extra, nan=np.nan, posinf=biggest, neginf=-biggest)
        return np.hstack([X, extra])

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "pairs_")
        names = _names_in(self, input_features)
        sign = "*" if self.kind == "product" else "/"
        extra = [f"{names[a]}{sign}{names[b]}" for a, b in self.pairs_]
        return np.asarray([*names, *extra], dtype=object)


# --- numeric: selection ----------------------------------------------------------------


class UnivariateSelector(_Supervised, _Selector):
    """Keeps the ``k`` features scored best one by one against y (SelectKBest).

    ``criterion``: ``"mutual_info"``, ``"anova"`` (F-test) or ``"chi2"`` (classification only;
    scored on a min-max scaled copy, the original columns pass through); the classification
    or regression variant follows the target type. ``k``: an int count (capped at the
    number of features) or a float share in (0, 1]. Missing values are median-imputed for
    scoring only.
    """

    def __init__(
        self, criterion: str = "mutual_info", k: int | float = 20, random_state: int | None = 0
    ) -> None:
        self.criterion = criterion
        self.k = k
        self.random_state = random_state

    def unsuitable_for(self, task: str) -> str | None:
        """Why this selector cannot work on a ``task`` target (None: it can)."""
        if self.criterion == "chi2" and task == "regression":
            return (
                "criterion='chi2' needs a class target, and this run is regression: "
                "choose features/selection=anova or features/selection=mutual_info"
            )
        return None

    def fit(self, X, y=None):
        owner = type(self).__name__
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan")
        score = _score_func(
            self.criterion,
            _task(y, owner),
            self.random_state,
            owner,
            ("mutual_info", "anova", "chi2"),
        )
        scored = _finite_copy(X)
        if self.criterion == "chi2":
            self.scaler_ = MinMaxScaler().fit(scored)
            scored = np.clip(self.scaler_.transform(scored), 0.0, None)
        count = _count(self.k, X.shape[1], "k", owner)
        with warnings.catch_warnings():  # constant columns score NaN and rank last
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            self.selector_ = SelectKBest(score, k=count).fit(scored, y)
        self.scores_ = self.selector_.scores_
        self.support_ = self.selector_.get_support()
        return self


class ModelImportanceSelector(_Supervised, _Selector):
    """Keeps the features a model finds important (SelectFromModel, LightGBM by default).

    Without ``estimator``: LGBMClassifier or LGBMRegressor by the target type
    (100 trees, ``random_state``). ``threshold`` and ``max_features`` as in SelectFromModel.
    """

    def __init__(
        self,
        estimator: BaseEstimator | None = None,
        threshold: str | float | None = "median",
        max_features: int | None = None,
        random_state: int = 0,
    ) -> None:
        self.estimator = estimator
        self.threshold = threshold
        self.max_features = max_features
        self.random_state = random_state

    def fit(self, X, y=None):
        owner = type(self).__name__
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan")
        task = _task(y, owner)
        if self.estimator is None:
            model = _lightgbm(task, self.random_state)
        else:
            model = clone(self.estimator)
        self.selector_ = SelectFromModel(
            model, threshold=self.threshold, max_features=self.max_features
        ).fit(X, y)
        self.estimator_ = self.selector_.estimator_
        self.support_ = self.selector_.get_support()
        return self


class PermutationSelector(_Supervised, _Selector):
    """Keeps the features whose shuffling hurts a held-out LightGBM score the most.

    Fits a small LightGBM (by the target type) on 75 % of the fit rows and computes
    permutation importance (``n_repeats`` shuffles) on the other 25 % (stratified for
    classification). ``keep``: an int count or a float share in (0, 1]; at least one.
    """

    def __init__(self, n_repeats: int = 3, keep: int | float = 0.5, random_state: int = 0) -> None:
        self.n_repeats = n_repeats
        self.keep = keep
        self.random_state = random_state

    def fit(self, X, y=None):
        owner = type(self).__name__
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan")
        task = _task(y, owner)
        count = _count(self.keep, X.shape[1], "keep", owner)
        y = np.asarray(y)
        stratify = None
        if task == "classification" and np.unique(y, return_counts=True)[1].min() >= 2:
            stratify = y
        X_fit, X_hold, y_fit, y_hold = train_test_split(
            X, y, test_size=0.25, stratify=stratify, random_state=self.random_state
        )
        self.estimator_ = _lightgbm(task, self.random_state, n_estimators=50).fit(X_fit, y_fit)
        result = permutation_importance(
            self.estimator_,
            X_hold,
            y_hold,
            n_repeats=self.n_repeats,
            random_state=self.random_state,
        )
        self.importances_ = result.importances_mean
        best = np.argsort(-self.importances_, kind="stable")[:count]
        self.support_ = np.zeros(X.shape[1], dtype=bool)
        self.support_[best] = True
        return self


class CorrelationFilter(_Selector):
    """Drops features almost collinear with an earlier kept one (|Pearson r| > threshold).

    Columns are visited in order; one is dropped when its absolute correlation (on the
    fit rows, pairwise-complete) with an earlier kept column exceeds ``threshold``.
    Constant columns have no correlation and are kept.
    """

    def __init__(self, threshold: float = 0.95) -> None:
        self.threshold = threshold

    def fit(self, X, y=None):
        if not isinstance(self.threshold, Real) or not 0 <= self.threshold <= 1:
            raise ValueError(
                f"CorrelationFilter: threshold must be in [0, 1], not {self.threshold!r}"
            )
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan")
        corr = np.abs(pd.DataFrame(X).corr().to_numpy())
        self.support_ = np.ones(X.shape[1], dtype=bool)
        for j in range(1, X.shape[1]):
            kept = np.flatnonzero(self.support_[:j])
            if np.any(corr[kept, j] > self.threshold):
                self.support_[j] = False
        return self


class ConstantDuplicateFilter(_Selector):
    """Drops features no model can use: those constant on the fit rows (one value, or all
    missing) and exact copies of an earlier feature (missing in the same rows).

    Unsupervised and cheap (per column: its minimum, maximum and a hash of its values),
    so a column constant in one CV fold only is dropped in that fold alone. A column with
    one value and some missing ones is kept: its missingness is information. When every
    feature is constant, the first is kept, so the model can still be fitted.
    """

    def __init__(self, constant: bool = True, duplicates: bool = True) -> None:
        self.constant = constant
        self.duplicates = duplicates

    def fit(self, X, y=None):
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan")
        missing = np.isnan(X)
        self.support_ = np.ones(X.shape[1], dtype=bool)
        if self.constant:
            with warnings.catch_warnings():  # all-missing columns have no min or max
                warnings.simplefilter("ignore", RuntimeWarning)
                low, high = np.nanmin(X, axis=0), np.nanmax(X, axis=0)
            one_value = (low == high) & ~missing.any(axis=0)
            self.support_ &= ~(one_value | missing.all(axis=0))
        if self.duplicates:
            self.support_ &= ~_copies(X, missing)
        if X.shape[1] and not self.support_.any():
            self.support_[0] = True
        return self


def _copies(X: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """Which columns equal an earlier one value for value (NaN equal to NaN): columns
    grouped by a hash of their values, then compared with the earlier ones of the group."""
    seen: dict[bytes, list[int]] = {}
    copies = np.zeros(X.shape[1], dtype=bool)
    for j in range(X.shape[1]):
        # one bit pattern for every NaN and for zero (-0.0 + 0.0 is 0.0), as they compare
        values = np.where(missing[:, j], np.nan, X[:, j] + 0.0)
        group = seen.setdefault(hashlib.blake2b(values.tobytes(), digest_size=16).digest(), [])
        copies[j] = any(np.array_equal(X[:, i], X[:, j], equal_nan=True) for i in group)
        if not copies[j]:
            group.append(j)
    return copies


class CappedSVD(TransformerMixin, BaseEstimator):
    """Truncated SVD to ``n_components`` components, fewer on narrower data (at most
    one less than the number of features, as TruncatedSVD needs)."""

    def __init__(self, n_components: int = 20, random_state: int | None = 0) -> None:
        self.n_components = n_components
        self.random_state = random_state

    def fit(self, X, y=None):
        X = validate_data(self, X, dtype=np.float64)
        components = max(1, min(int(self.n_components), X.shape[1] - 1))
        self.svd_ = TruncatedSVD(components, random_state=self.random_state).fit(X)
        return self

    def transform(self, X):
        check_is_fitted(self, "svd_")
        return self.svd_.transform(validate_data(self, X, dtype=np.float64, reset=False))

    def get_feature_names_out(self, input_features=None):
        _names_in(self, input_features)
        return np.asarray([f"svd{i}" for i in range(self.svd_.n_components)], dtype=object)
