"""The fast path: JSON records straight to the compiled model, without pandas.

Scoring one record through pandas, the contract (Pandera) and a ``ColumnTransformer``
costs milliseconds, nearly all of it checks and indexing. For a few records the server
instead runs, per record:

1. ``RecordReader``: the data set's cleaning rules and input contract on a ``dict``
   (strip, NA markers, suffixes, dtype, nullability, min/max, allowed values);
2. the model compiled (``automl.bundle.compiled``, config ``compiled``): the feature steps
   as plain Python on lists, then the estimator(s) on the ``float64`` rows (one thread),
   an ensemble's members blended with its weights.

Anything the reader is unsure of (a value of another type, a check that fails, an unseen
category an encoder would reject) raises ``Fallback``; the caller then uses the
vectorised pipeline, whose contract gives the error message. So the fast path gives the
pipeline's predictions or none at all; tests/test_serve_fastpath.py checks it row by row.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from automl.bundle.compiled import MISSING, Fallback, NotCompilable, is_missing
from automl.bundle.model import Model

__all__ = ["Fallback", "FastPath", "NotCompilable", "RecordReader"]


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


class FastPath:
    """One or a few records scored by the compiled model: ``RecordReader`` -> plain-Python
    feature rows -> the estimator(s) on a float64 matrix."""

    def __init__(self, model: Model) -> None:
        if model.compiled is None:
            raise NotCompilable(model.compile_status)
        self.reader = RecordReader(model)
        self.compiled = model.compiled

    def predict(self, records: list[dict]) -> np.ndarray:
        """Probabilities (classifiers) or values (``Fallback`` when a record needs the
        pipeline)."""
        return self.compiled.records(self.reader.read(records))
