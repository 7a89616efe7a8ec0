"""A fitted model compiled for scoring: its feature steps as plain functions, in two forms
that give the same numbers as the scikit-learn pipeline, bit for bit.

- per record (``CompiledModel.records``): plain Python on lists, for the server's fast
  path, where one record through pandas and a ``ColumnTransformer`` would cost
  milliseconds of checks and indexing;
- per batch (``CompiledModel.frame``): numpy on whole columns of a frame ``Model.prepare``
  returned, for batch files, HTTP batches and in-process scoring, without the pipeline's
  per-call validation, conversions and copies.

Which compiler serves which fitted step class, and how a final estimator predicts one
record, is config (``conf/common/compiled/default.yaml``). A model compiles when its
pipeline is a ``ColumnTransformer`` of compilable blocks, then compilable steps across all
features (e.g. selection; one switched off passes its input through), then its estimator,
or a weighted ensemble of such pipelines (``WeightedEnsemble``), with or without a
probability calibration (``Calibrated``); anything else raises ``NotCompilable`` with the
reason, and is scored by its pipeline. A value the compiled steps cannot take exactly as
the pipeline would (an unseen category an encoder rejects, a value of another type)
raises ``Fallback``: the caller then uses the pipeline, whose contract and encoders name
the problem. tests/test_compiled.py checks both forms against the pipeline row by row.
"""

from __future__ import annotations

import ctypes
import math
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from omegaconf import OmegaConf

from automl.config import build

Row = Callable[[list], list]  # one record's values -> the step's output values
Column = Any  # one column of a batch: a pandas Series (strings stay Arrow) or a 1-D array
Batch = Callable[[list[Column]], list[Column]]  # a block's columns -> the step's output
# columns (a 2-D array in the output stands for as many columns as it has)
Output = np.ndarray  # probabilities (classifiers) or values, one row per record
MISSING = float("nan")
SENTINEL = "\x00automl-unseen\x00"  # a category no encoder has seen


class Fallback(Exception):
    """These rows cannot be scored by the compiled model: use the pipeline."""


class NotCompilable(Exception):
    """A model the compiler cannot compile (the reason is the message)."""


@dataclass(frozen=True)
class CompiledStep:
    """A fitted step as functions: one record's values, and a whole block of rows."""

    row: Row
    batch: Batch
    width: int  # output columns


@dataclass(frozen=True)
class Compilers:
    """Which compiler serves which fitted step class, and which one-record predictor which
    final estimator class (``conf/common/compiled/``), as (class, function) pairs."""

    steps: list[tuple[type, Callable[[Any], CompiledStep]]]
    predictors: list[tuple[type, Callable[[Any, bool], Callable]]]

    @classmethod
    def of(cls, cfg: Any) -> Compilers:
        """From a ``compiled`` config node: ``{steps: {name: {step, compile}}, predictors:
        {name: {estimator, predict}}}`` (classes whose library is missing are left out)."""
        return cls(
            class_table(cfg.get("steps") or {}, "step", "compile"),
            class_table(cfg.get("predictors") or {}, "estimator", "predict"),
        )

    @classmethod
    @cache
    def default(cls) -> Compilers:
        """The shipped table (``conf/common/compiled/default.yaml``)."""
        path = resources.files("automl.conf.common") / "compiled" / "default.yaml"
        return cls.of(OmegaConf.create(path.read_text()))


def load_class(path: str) -> type | None:
    """The class at a dotted path, or None when its library is not installed."""
    module, _, name = path.rpartition(".")
    try:
        return getattr(__import__(module, fromlist=[name]), name)
    except ImportError:
        return None


def class_table(nodes: Any, key: str, value: str) -> list[tuple[type, Any]]:
    """``{name: {key: class path, value: node}}`` from config as (class, built object) pairs."""
    table = []
    for node in nodes.values():
        cls = load_class(node[key])
        if cls is not None:
            table.append((cls, build(node[value])))
    return table


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


# --- step compilers: fitted step -> CompiledStep ---


def compile_imputer(step: Any) -> CompiledStep:
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

    def impute_batch(columns: list[Column]) -> list[Column]:
        columns = split(columns)
        out = [fill_column(columns[i], fill) for i, fill in fills]
        out.extend(missing_mask(columns[i]).astype(np.float64) for i in flags)
        return out

    return CompiledStep(impute, impute_batch, len(fills) + len(flags))


def compile_scaler(step: Any) -> CompiledStep:
    """``StandardScaler``: ``(x - mean) / scale`` in float64, as scikit-learn computes it."""
    n = int(step.n_features_in_)
    means = [float(m) for m in step.mean_] if step.with_mean else [0.0] * n
    scales = [float(s) for s in step.scale_] if step.with_std else [1.0] * n

    def scale(values: list) -> list:
        return [(float(v) - m) / s for v, m, s in zip(values, means, scales)]

    def scale_batch(columns: list[Column]) -> list[Column]:
        return [
            (as_floats(c) - m) / s for c, m, s in zip(split(columns), means, scales, strict=True)
        ]

    return CompiledStep(scale, scale_batch, n)


def compile_lookup(step: Any) -> CompiledStep:
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

    tables, unknown, missing, owned, known, stacked = [], [], [], [], [], []
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
        known.append(pd.Index(seen))
        # rows: the seen categories, then unseen, then missing (NaN where the encoder refuses)
        nothing = np.full(len(cols), np.nan)
        stacked.append(
            np.vstack(
                [
                    encoded[:, cols].reshape(len(seen), len(cols)),
                    nothing if extra["unknown"] is None else extra["unknown"][cols],
                    nothing if extra["missing"] is None else extra["missing"][cols],
                ]
            )
        )
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

    def lookup_batch(columns: list[Column]) -> list[Column]:
        parts = []
        for j, (index, table) in enumerate(zip(known, stacked, strict=True)):
            position, absent = positions(split(columns)[j], index)
            unseen = position < 0
            if unseen.any() and unknown[j] is None or absent.any() and missing[j] is None:
                raise Fallback
            position[unseen] = len(index)
            position[absent] = len(index) + 1
            parts.append(table[position])
        return parts

    return CompiledStep(lookup, lookup_batch, width)


def compile_selector(step: Any) -> CompiledStep:
    """A feature selector (``get_support``): its kept columns, in order."""
    kept = np.flatnonzero(step.get_support())
    keep = kept.tolist()

    def select(values: list) -> list:
        return [values[i] for i in keep]

    def select_batch(columns: list[Column]) -> list[Column]:
        if len(columns) == 1 and getattr(columns[0], "ndim", 1) == 2:
            return [columns[0][:, kept]]
        columns = split(columns)
        return [columns[i] for i in keep]

    return CompiledStep(select, select_batch, len(keep))


# --- batch helpers ---


def split(columns: list[Column]) -> list[Column]:
    """Columns, with any 2-D block an earlier step returned split into its columns."""
    if all(getattr(c, "ndim", 1) == 1 for c in columns):
        return columns
    out: list[Column] = []
    for c in columns:
        out.extend(c.T if getattr(c, "ndim", 1) == 2 else [c])
    return out


def missing_mask(column: Column) -> np.ndarray:
    """Which values are missing (NaN, None, NA), as a boolean array."""
    return np.asarray(pd.isna(column), dtype=bool)


def fill_column(column: Column, fill: Any) -> Column:
    """``column`` with its missing values replaced by ``fill``."""
    if isinstance(column, pd.Series):
        return column.fillna(fill) if column.hasnans else column
    if column.dtype == object:
        return np.where(missing_mask(column), fill, column)
    return np.where(np.isnan(column), fill, column)


def as_floats(column: Column) -> np.ndarray:
    if isinstance(column, pd.Series):
        return column.to_numpy(dtype=np.float64, na_value=np.nan)
    return np.asarray(column, dtype=np.float64)


def positions(column: Column, index: pd.Index) -> tuple[np.ndarray, np.ndarray]:
    """Each value's position in ``index`` (-1: not in it) and which values are missing.
    Arrow strings are looked up by Arrow (``index_in``), anything else by pandas."""
    absent = missing_mask(column)
    try:
        values = pa.array(column.array if isinstance(column, pd.Series) else column)
        found = pc.index_in(values, value_set=pa.array(index.to_numpy()))
        position = found.to_numpy(zero_copy_only=False)
        position = np.where(np.isnan(position), -1, position).astype(np.intp)
    except (pa.ArrowException, TypeError, ValueError):
        position = index.get_indexer(np.asarray(column, dtype=object))
    position[absent] = -1
    return position, absent


# --- the model ---


@dataclass
class Block:
    """One block of the ColumnTransformer: the columns it reads and its compiled steps."""

    columns: list[str]
    steps: list[CompiledStep]
    width: int


class CompiledPipeline:
    """A (feature step, estimator) pipeline: records or a frame -> float64 matrix -> output."""

    def __init__(self, pipeline: Any, classifier: bool, compilers: Compilers) -> None:
        if not hasattr(pipeline, "steps") or len(pipeline.steps) < 2:
            raise NotCompilable("the pipeline is not (feature step, ..., estimator)")
        features, self.estimator = pipeline.steps[0][1], pipeline.steps[-1][1]
        if not hasattr(features, "transformers_"):
            kind = type(features).__name__
            raise NotCompilable(f"feature step {kind} is not a ColumnTransformer")
        output = getattr(features, "_sklearn_output_config", {}).get("transform", "default")
        if output != "default" or getattr(features, "sparse_output_", False):
            raise NotCompilable(f"the feature step outputs '{output}' frames, not numpy arrays")
        inner = getattr(self.estimator, "estimator_", self.estimator)  # e.g. EarlyStopping
        if hasattr(inner, "feature_names_in_"):
            raise NotCompilable("the estimator was fitted on named columns")
        blocks = [block(t, cols, compilers) for _, t, cols in features.transformers_]
        self.blocks = [b for b in blocks if b is not None]
        self.width = len(features.get_feature_names_out())
        if sum(b.width for b in self.blocks) != self.width:
            raise NotCompilable(f"compiled blocks != the feature step's {self.width} columns")
        self.across = across_steps([s for _, s in pipeline.steps[1:-1]], self.width, compilers)
        self.width = self.across[-1].width if self.across else self.width
        if getattr(inner, "n_features_in_", self.width) != self.width:
            raise NotCompilable(f"the estimator takes other than the {self.width} features")
        self.classifier = classifier
        factory = next((p for cls, p in compilers.predictors if isinstance(inner, cls)), None)
        self.one = factory(inner, classifier) if factory is not None else self.predict

    def row(self, values: dict) -> list:
        """One record's feature row (values as ``RecordReader`` returns them)."""
        row: list = []
        for b in self.blocks:
            out = [values[c] for c in b.columns]
            for step in b.steps:
                out = step.row(out)
            row.extend(out)
        for step in self.across:
            row = step.row(row)
        return row

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """The feature matrix of a prepared frame (as ``Model.prepare`` returns it)."""
        out = self.blocks_matrix(frame)
        for step in self.across:
            parts = step.batch([out])
            out = np.column_stack(parts) if parts else np.empty((len(frame), 0))
        return out

    def blocks_matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """The feature step's (the ColumnTransformer's) matrix of a prepared frame."""
        out = np.empty((len(frame), sum(b.width for b in self.blocks)), dtype=np.float64)
        at = 0
        for b in self.blocks:
            columns: list[Column] = [frame[c] for c in b.columns]
            for step in b.steps:
                columns = step.batch(columns)
            for part in columns:
                width = 1 if np.ndim(part) == 1 else part.shape[1]
                try:
                    out[:, at : at + width] = np.reshape(as_floats(part), (len(frame), width))
                except (TypeError, ValueError):
                    raise Fallback from None  # e.g. strings passed through
                at += width
        return out

    def predict(self, X: np.ndarray) -> Output:
        """What the pipeline's estimator returns for ``X``: probabilities or values."""
        if self.classifier:
            return self.estimator.predict_proba(X)
        return self.estimator.predict(X)

    def records(self, values: list[dict]) -> Output:
        try:
            X = np.array([self.row(v) for v in values], dtype=np.float64)
        except (TypeError, ValueError):
            raise Fallback from None
        return self.one(X)

    def frame(self, frame: pd.DataFrame) -> Output:
        return self.predict(self.matrix(frame))


def block(transformer: Any, columns: Any, compilers: Compilers) -> Block | None:
    """One block of the ColumnTransformer compiled, or None when it outputs nothing."""
    columns = list(columns)
    if isinstance(transformer, str) and transformer == "drop" or not columns:
        return None
    if isinstance(transformer, str) and transformer == "passthrough":
        return Block(columns, [], len(columns))
    steps = getattr(transformer, "steps", None) or [("", transformer)]
    compiled, width = [], len(columns)
    for _, step in steps:
        compiler = next((c for cls, c in compilers.steps if isinstance(step, cls)), None)
        if compiler is None:
            raise NotCompilable(f"no compiler for {type(step).__name__}")
        compiled.append(compiler(step))
        width = compiled[-1].width
    return Block(columns, compiled, width)


def across_steps(steps: list[Any], width: int, compilers: Compilers) -> list[CompiledStep]:
    """The steps between the feature step and the estimator compiled, in order; a step
    switched off (duck-typed ``OptionalStep``: ``step_`` None) passes its input through."""
    compiled = []
    for step in steps:
        inner = getattr(step, "step_", step)
        if inner is None:
            continue
        compiler = next((c for cls, c in compilers.steps if isinstance(inner, cls)), None)
        if compiler is None:
            raise NotCompilable(f"no compiler for {type(inner).__name__} across the features")
        if getattr(inner, "n_features_in_", width) != width:
            raise NotCompilable(f"{type(inner).__name__} was fitted on another width")
        compiled.append(compiler(inner))
        width = compiled[-1].width
    return compiled


def blend(outputs: list[Output], weights: Any) -> Output:
    """The weighted mean of members' outputs (``WeightedEnsemble``'s, in its order of
    operations, so a compiled ensemble gives its numbers bit for bit)."""
    total = sum(w * out for out, w in zip(outputs, weights, strict=True))
    return total / float(np.sum(weights))


class CompiledEnsemble:
    """A weighted ensemble (``members_``, ``weights``): each member compiled, their
    outputs blended."""

    def __init__(self, ensemble: Any, classifier: bool, compilers: Compilers) -> None:
        self.members = [compile_estimator(m, classifier, compilers) for m in ensemble.members_]
        self.weights = ensemble.weights

    def records(self, values: list[dict]) -> Output:
        return blend([m.records(values) for m in self.members], self.weights)

    def frame(self, frame: pd.DataFrame) -> Output:
        return blend([m.frame(frame) for m in self.members], self.weights)


class CompiledCalibration:
    """A calibrated model (``estimator_``, ``calibrator``): its estimator compiled, its
    calibrator applied after."""

    def __init__(self, model: Any, classifier: bool, compilers: Compilers) -> None:
        self.inner = compile_estimator(model.estimator_, classifier, compilers)
        self.calibrator = model.calibrator

    def records(self, values: list[dict]) -> Output:
        return self.calibrator.transform(self.inner.records(values))

    def frame(self, frame: pd.DataFrame) -> Output:
        return self.calibrator.transform(self.inner.frame(frame))


CompiledModel = CompiledPipeline | CompiledEnsemble | CompiledCalibration


def compile_estimator(model: Any, classifier: bool, compilers: Compilers) -> CompiledModel:
    """The compiled form of a fitted model (``NotCompilable`` with the reason, if none).
    Ensembles and calibrations are recognised by their attributes, as the explainer does
    (``automl.models.ensemble`` is a layer above this one)."""
    if hasattr(model, "calibrator") and hasattr(model, "estimator_"):
        return CompiledCalibration(model, classifier, compilers)
    if hasattr(model, "members_") and hasattr(model, "weights"):
        return CompiledEnsemble(model, classifier, compilers)
    return CompiledPipeline(model, classifier, compilers)


# --- one-record predictors (conf/common/compiled/default.yaml: predictors) ---


def lightgbm_predictor(estimator: Any, classifier: bool) -> Callable[[np.ndarray], Output]:
    """What ``predict_proba``/``predict`` return, from the booster with one thread.

    One row goes through LightGBM's own single-row C API (``...SingleRowFast``: set up
    once per model; about 20 µs a row against 47 µs for ``Booster.predict``, which builds
    a predictor and copies its parameters on every call), several through
    ``Booster.predict``; both run the same library code on the same float64 values, so
    the numbers are the same (tests/test_serve.py checks every adult test row). The
    scikit-learn wrapper checks its input first (about 1 ms a call). Binary: ``[1 - p,
    p]``, as the wrapper stacks them.
    """
    booster = estimator.booster_
    single = SingleRow(booster, int(estimator.n_features_in_))

    def predict(X: np.ndarray) -> Output:
        result = single(X[0]) if len(X) == 1 else booster.predict(X, num_threads=1)
        if classifier and result.ndim == 1:
            return np.vstack((1.0 - result, result)).transpose()
        return result

    return predict


class SingleRow:
    """LightGBM's fast single-row prediction for one booster (a handle made once, freed
    with this object; calls are serialised: the handle holds one row's buffers)."""

    def __init__(self, booster: Any, columns: int) -> None:
        from lightgbm.basic import _LIB, _c_str, _safe_call

        self.call, self.check = _LIB.LGBM_BoosterPredictForMatSingleRowFast, _safe_call
        self.handle = ctypes.c_void_p()
        best = booster.best_iteration if booster.best_iteration > 0 else -1
        normal, float64 = 0, 1  # C_API_PREDICT_NORMAL, C_API_DTYPE_FLOAT64
        _safe_call(
            _LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
                booster._handle,  # the booster's C handle: LightGBM's own predict uses it
                ctypes.c_int(normal),
                ctypes.c_int(0),
                ctypes.c_int(best),
                ctypes.c_int(float64),
                ctypes.c_int32(columns),
                _c_str("num_threads=1"),
                ctypes.byref(self.handle),
            )
        )
        weakref.finalize(self, _LIB.LGBM_FastConfigFree, self.handle)
        self.booster = booster  # the handle is valid while the booster lives
        self.outputs = booster.num_model_per_iteration()
        self.length = ctypes.c_int64()
        self.lock = threading.Lock()

    def __call__(self, row: np.ndarray) -> np.ndarray:
        row = np.ascontiguousarray(row, dtype=np.float64)
        out = np.empty(self.outputs, dtype=np.float64)
        with self.lock:
            self.check(
                self.call(
                    self.handle,
                    row.ctypes.data_as(ctypes.c_void_p),
                    ctypes.byref(self.length),
                    out.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
                )
            )
        return out.reshape(1, -1) if self.outputs > 1 else out  # as Booster.predict shapes it
