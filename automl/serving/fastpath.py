"""The fast path: a fitted pipeline compiled into plain Python from JSON records to a numpy row.

Scoring one record through pandas, the contract (Pandera) and a ``ColumnTransformer``
costs milliseconds, nearly all of it checks and indexing. For a few records the server
instead runs, per record:

1. ``RecordReader``: the data set's cleaning rules and input contract on a ``dict``
   (strip, NA markers, suffixes, dtype, nullability, min/max, allowed values);
2. the feature step, compiled block by block from the fitted steps (``compile_imputer``,
   ``compile_scaler``, ``compile_lookup``: which compiler serves which step class is
   config, ``fast_path.compilers``);
3. the fitted final estimator on the resulting ``float64`` row (one thread).

Anything the reader is unsure of (a value of another type, a check that fails, an unseen
category an encoder would reject) raises ``Fallback``; the caller then uses the
vectorised pipeline, whose contract gives the error message. So the fast path gives the
pipeline's predictions or none at all; tests/test_serve_fastpath.py checks it row by row.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from automl.bundle.model import Model

Step = Callable[[list], list]
MISSING = float("nan")
SENTINEL = "\x00automl-unseen\x00"  # a category no encoder has seen


class Fallback(Exception):
    """This request cannot take the fast path: use the vectorised pipeline."""


class NotCompilable(Exception):
    """A model whose pipeline the fast path cannot compile (the reason is the message)."""


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


class RecordReader:
    """A record (``dict``) cleaned and checked as ``Model.prepare`` would, or ``Fallback``."""

    def __init__(self, model: Model) -> None:
        spec = model.manifest["clean"]
        contract = model.input_contract
        self.rename = spec.get("rename") or {}
        self.drop = set(spec.get("drop") or [])
        self.strip = spec.get("strip_whitespace", True)
        self.markers = set(spec.get("na_values") or [])
        self.suffixes = spec.get("strip_suffix") or {}
        self.strict = contract.strict
        self.known = set(contract.columns) | set(contract.ignored)
        self.columns = contract.columns
        self.allowed = {
            c: {str(v) for v in s.allowed} if s.dtype == "category" else set(s.allowed)
            for c, s in contract.columns.items()
            if s.allowed is not None
        }
        self.unique = [c for c, s in contract.columns.items() if s.unique]

    def names(self, record: dict) -> dict:
        """The record with column names as ``clean`` leaves them."""
        out = {}
        for key, value in record.items():
            name = key.strip() if isinstance(key, str) else key
            name = self.rename.get(name, name)
            if name in self.drop:
                continue
            if name in out:
                raise Fallback
            out[name] = value
        return out

    def read(self, records: list[dict]) -> list[dict]:
        if self.unique and len(records) > 1:
            raise Fallback
        return [self.read_one(r) for r in records]

    def read_one(self, record: dict) -> dict:
        if not isinstance(record, dict):
            raise Fallback
        record = self.names(record)
        if self.strict and any(k not in self.known for k in record):
            raise Fallback
        out = {}
        for col, spec in self.columns.items():
            if col not in record:
                raise Fallback  # missing: required ones are an error, others change the frame
            value = record[col]
            if spec.dtype == "category":
                value = self.category(col, value)
            elif spec.dtype in ("float", "int", "bool"):
                value = self.number(value, spec)
            else:
                raise Fallback
            if is_missing(value):
                if not spec.nullable:
                    raise Fallback
            elif col in self.allowed and value not in self.allowed[col]:
                raise Fallback
            out[col] = value
        return out

    def category(self, col: str, value: Any) -> Any:
        if value is None:
            return MISSING
        if not isinstance(value, str):
            raise Fallback
        if self.strip:
            value = value.strip()
        if value in self.markers:
            return MISSING
        if col in self.suffixes:
            value = value.removesuffix(self.suffixes[col])
        return value

    @staticmethod
    def number(value: Any, spec: Any) -> float:
        if value is None:
            return MISSING
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Fallback
        try:
            value = float(value)
        except OverflowError:
            raise Fallback from None
        if math.isinf(value):
            raise Fallback
        if value == value and (
            (spec.min is not None and value < spec.min)
            or (spec.max is not None and value > spec.max)
        ):
            raise Fallback
        return value


# --- step compilers: fitted step -> (function of a list of values, output width) ---


def compile_imputer(step: Any) -> tuple[Step, int]:
    """``SimpleImputer`` (NaN as the missing marker), with its missing-value indicators."""
    if not (isinstance(step.missing_values, float) and math.isnan(step.missing_values)):
        raise NotCompilable(f"SimpleImputer(missing_values={step.missing_values!r})")
    stats = list(step.statistics_)
    keep = list(range(len(stats)))
    if not step.keep_empty_features and step.strategy != "constant":
        keep = [i for i, s in enumerate(stats) if not is_missing(s)]
    fills = [(i, stats[i]) for i in keep]
    indicator = getattr(step, "indicator_", None)
    flags = list(indicator.features_) if indicator is not None else []

    def impute(values: list) -> list:
        out = [fill if is_missing(values[i]) else values[i] for i, fill in fills]
        out.extend(1.0 if is_missing(values[i]) else 0.0 for i in flags)
        return out

    return impute, len(fills) + len(flags)


def compile_scaler(step: Any) -> tuple[Step, int]:
    """``StandardScaler``: ``(x - mean) / scale`` in float64, as scikit-learn computes it."""
    n = int(step.n_features_in_)
    means = [float(m) for m in step.mean_] if step.with_mean else [0.0] * n
    scales = [float(s) for s in step.scale_] if step.with_std else [1.0] * n

    def scale(values: list) -> list:
        return [(float(v) - m) / s for v, m, s in zip(values, means, scales)]

    return scale, n


def compile_lookup(step: Any) -> tuple[Step, int]:
    """A column-wise encoder with ``categories_`` (one-hot, ordinal): a table per column.

    Each column's categories (and an unseen value, and a missing one) are sent through the
    fitted encoder once; the output columns that change with a column belong to it. A value
    the encoder rejects (unknown with ``handle_unknown='error'``) gives ``Fallback``.
    """
    categories = [list(c) for c in step.categories_]
    names = getattr(step, "feature_names_in_", None)
    base = [c[0] for c in categories]

    def encode(column: int, values: list) -> np.ndarray:
        rows = [list(base) for _ in values]
        for row, value in zip(rows, values):
            row[column] = value
        probe = np.array(rows, dtype=object)
        if names is not None:
            probe = pd.DataFrame(probe, columns=names)
        out = step.transform(probe)
        return np.asarray(out.toarray() if hasattr(out, "toarray") else out, dtype=float)

    tables, unknown, missing, owned = [], [], [], []
    for j, cats in enumerate(categories):
        seen = [c for c in cats if not is_missing(c)]
        encoded = encode(j, seen)
        extra = {}
        for key, value in (("unknown", SENTINEL), ("missing", MISSING)):
            try:
                extra[key] = encode(j, [value])[0]
            except (ValueError, TypeError):
                extra[key] = None
        stack = np.vstack([encoded] + [v[None] for v in extra.values() if v is not None])
        cols = np.flatnonzero(stack.min(axis=0) != stack.max(axis=0))
        owned.append(cols)
        tables.append({c: tuple(encoded[i, cols]) for i, c in enumerate(seen)})
        unknown.append(None if extra["unknown"] is None else tuple(extra["unknown"][cols]))
        missing.append(None if extra["missing"] is None else tuple(extra["missing"][cols]))
    width = encode(0, [base[0]]).shape[1]
    order = np.concatenate(owned) if owned else np.array([], dtype=int)
    if not np.array_equal(order, np.arange(width)):
        raise NotCompilable(f"{type(step).__name__}: outputs are not one block per column")

    def lookup(values: list) -> list:
        out: list = []
        for value, table, unseen, nan in zip(values, tables, unknown, missing):
            vector = nan if is_missing(value) else table.get(value, unseen)
            if vector is None:
                raise Fallback
            out.extend(vector)
        return out

    return lookup, width


# --- the whole pipeline ---


@dataclass
class Block:
    columns: list[str]
    steps: list[Step]
    width: int


class FastPath:
    """A compiled model: records -> validated values -> a float64 matrix -> the estimator."""

    def __init__(
        self,
        model: Model,
        compilers: list[tuple[type, Callable]],
        predictors: list[tuple[type, Callable]] = (),
    ) -> None:
        pipeline = model.pipeline
        if not hasattr(pipeline, "steps") or len(pipeline.steps) != 2:
            raise NotCompilable("the pipeline is not (feature step, estimator)")
        features, self.estimator = pipeline.steps[0][1], pipeline.steps[1][1]
        if not hasattr(features, "transformers_"):
            kind = type(features).__name__
            raise NotCompilable(f"feature step {kind} is not a ColumnTransformer")
        output = getattr(features, "_sklearn_output_config", {}).get("transform", "default")
        if output != "default" or getattr(features, "sparse_output_", False):
            raise NotCompilable(f"the feature step outputs '{output}' frames, not numpy arrays")
        if hasattr(getattr(self.estimator, "estimator_", self.estimator), "feature_names_in_"):
            raise NotCompilable("the estimator was fitted on named columns")
        self.reader = RecordReader(model)
        self.blocks = [self.block(t, cols, compilers) for _, t, cols in features.transformers_]
        self.blocks = [b for b in self.blocks if b is not None]
        width = len(features.get_feature_names_out())
        if sum(b.width for b in self.blocks) != width:
            raise NotCompilable(f"compiled blocks != the feature step's {width} columns")
        self.classifier = model.classes is not None
        self.inner = getattr(self.estimator, "estimator_", self.estimator)  # e.g. EarlyStopping
        self.booster = next((p for cls, p in predictors if isinstance(self.inner, cls)), None)

    @staticmethod
    def block(transformer: Any, columns: Any, compilers: list) -> Block | None:
        """One block of the ColumnTransformer compiled, or None when it outputs nothing."""
        columns = list(columns)
        if isinstance(transformer, str) and transformer == "drop" or not columns:
            return None
        if isinstance(transformer, str) and transformer == "passthrough":
            return Block(columns, [], len(columns))
        steps = getattr(transformer, "steps", None) or [("", transformer)]
        steps = [s for _, s in steps]
        compiled, width = [], len(columns)
        for step in steps:
            compiler = next((c for cls, c in compilers if isinstance(step, cls)), None)
            if compiler is None:
                raise NotCompilable(f"no fast-path compiler for {type(step).__name__}")
            function, width = compiler(step)
            compiled.append(function)
        return Block(columns, compiled, width)

    def features(self, values: dict) -> list[float]:
        row: list = []
        for block in self.blocks:
            out = [values[c] for c in block.columns]
            for step in block.steps:
                out = step(out)
            row.extend(out)
        return row

    def matrix(self, records: list[dict]) -> np.ndarray:
        """The feature matrix of ``records`` (``Fallback`` when one needs the pipeline)."""
        rows = [self.features(v) for v in self.reader.read(records)]
        try:
            return np.array(rows, dtype=np.float64)
        except (TypeError, ValueError):
            raise Fallback from None

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Probabilities (classifiers) or values, from the estimator on ``X``."""
        if self.booster is not None:
            return self.booster(self.inner, X, self.classifier)
        if self.classifier:
            return self.estimator.predict_proba(X)
        return self.estimator.predict(X)
