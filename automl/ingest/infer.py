"""Column types inferred from a sample, applied to every chunk, and the contract they imply."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from automl.config import IngestLimits as Limits
from automl.data.contract import as_category_strings, is_free_text

KINDS = (
    "numeric",
    "integer",
    "boolean",
    "categorical",
    "datetime",
    "text",
    "identifier",
    "constant",
)
TRUE = {"true", "yes", "y", "t", "1"}
FALSE = {"false", "no", "n", "f", "0"}


@dataclass
class ColumnKind:
    """The inferred kind of one column and why."""

    name: str
    kind: str
    reason: str
    categories: list[str] = field(default_factory=list)


def as_text(series: pd.Series) -> pd.Series:
    return series.dropna().astype(str).str.strip()


def parses_as_numbers(values: pd.Series, limits: Limits) -> pd.Series | None:
    """The values as numbers when at least ``min_parsed`` of them are."""
    numbers = pd.to_numeric(values, errors="coerce")
    return numbers if numbers.notna().mean() >= limits.min_parsed else None


def parses_as_dates(values: pd.Series, limits: Limits) -> bool:
    if values.str.fullmatch(r"[-+]?\d+(\.\d+)?").mean() > 0.5:
        return False  # plain numbers are not dates
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stamps = pd.to_datetime(values, errors="coerce", format="mixed")
    return bool(stamps.notna().mean() >= limits.min_parsed)


def infer_kind(series: pd.Series, limits: Limits) -> ColumnKind:
    """The kind of one column from its sample values."""
    name = str(series.name)
    present = series.dropna()
    if present.nunique() <= 1:
        return ColumnKind(name, "constant", f"a single value ({present.unique()[:1].tolist()})")
    if pd.api.types.is_bool_dtype(series):
        return ColumnKind(name, "boolean", "true/false values")
    if pd.api.types.is_datetime64_any_dtype(series):
        return ColumnKind(name, "datetime", "date-time values")
    text = as_text(series)
    lowered = set(text.str.lower().unique())
    if not pd.api.types.is_float_dtype(series) and lowered <= TRUE | FALSE and len(lowered) == 2:
        return ColumnKind(name, "boolean", f"two values {sorted(lowered)}")
    numbers = present if pd.api.types.is_numeric_dtype(series) else parses_as_numbers(text, limits)
    unique_per_row = present.nunique() == len(series) and len(series) >= limits.identifier_min_rows
    if numbers is not None:
        numbers = numbers.dropna()
        if bool(np.all(np.mod(numbers, 1) == 0)):
            if unique_per_row:
                return ColumnKind(name, "identifier", "whole numbers, unique per row")
            return ColumnKind(name, "integer", "whole numbers")
        return ColumnKind(name, "numeric", "numbers")
    if parses_as_dates(text, limits):
        return ColumnKind(name, "datetime", "date-time values")
    distinct = text.nunique()
    if is_free_text(text, limits.max_categories, limits.text_min_length, limits.text_min_words):
        return ColumnKind(name, "text", f"free text ({distinct} distinct values)")
    if unique_per_row:
        return ColumnKind(name, "identifier", "text, unique per row")
    if distinct <= limits.max_categories:
        return ColumnKind(
            name, "categorical", f"{distinct} distinct values", sorted(text.unique().tolist())
        )
    return ColumnKind(name, "categorical", f"{distinct} distinct values (high cardinality)")


def infer_kinds(sample: pd.DataFrame, limits: Limits) -> dict[str, ColumnKind]:
    """The kind of each column of ``sample``."""
    return {str(col): infer_kind(sample[col], limits) for col in sample.columns}


def coerce(chunk: pd.DataFrame, kinds: dict[str, ColumnKind]) -> tuple[pd.DataFrame, pd.Series]:
    """``chunk`` with each column in its canonical type, and a reason per row that has a
    value that does not fit its column's kind ('' for good rows)."""
    out = {}
    reasons = pd.Series("", index=chunk.index, dtype=object)
    for col, kind in kinds.items():
        series = chunk[col] if col in chunk.columns else pd.Series(np.nan, index=chunk.index)
        missing = series.isna() | series.astype(str).str.strip().eq("")
        if kind.kind in ("numeric", "integer"):
            values = pd.to_numeric(series, errors="coerce")
            bad = values.isna() & ~missing
            values = values.astype("float64")
            expected = "a number"
        elif kind.kind == "boolean":
            lowered = series.astype(str).str.strip().str.lower()
            values = pd.Series(np.where(lowered.isin(TRUE), True, False), index=chunk.index)
            values = values.astype("boolean").mask(missing)
            bad = ~missing & ~lowered.isin(TRUE | FALSE)
            expected = "true/false"
        elif kind.kind == "datetime":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                values = pd.to_datetime(series, errors="coerce", format="mixed")
            bad = values.isna() & ~missing
            expected = "a date-time"
        elif kind.kind == "categorical":  # codes read as numbers become text ("1", not "1.0")
            values = as_category_strings(series).str.strip().where(~missing)
            bad = pd.Series(False, index=chunk.index)
        else:  # text, identifier, constant: numbers stay numbers
            numeric = pd.api.types.is_numeric_dtype(series)
            values = series if numeric else series.astype("str").str.strip().where(~missing)
            bad = pd.Series(False, index=chunk.index)
            expected = ""
        if bad.any():
            why = f"{col}: expected {expected}"
            reasons[bad] = np.where(reasons[bad] == "", why, reasons[bad] + "; " + why)
        out[col] = values
    return pd.DataFrame(out, index=chunk.index), reasons


CONTRACT_DTYPE = {
    "numeric": "float",
    "integer": "int",
    "identifier": "float",
    "boolean": "bool",
    "datetime": "datetime",
}


@dataclass
class RunningStats:
    """Per-column statistics gathered over every chunk (for the contract)."""

    rows: int = 0
    missing: dict[str, int] = field(default_factory=dict)
    low: dict[str, float] = field(default_factory=dict)
    high: dict[str, float] = field(default_factory=dict)
    values: dict[str, set] = field(default_factory=dict)

    def update(self, frame: pd.DataFrame, kinds: dict[str, ColumnKind], cap: int) -> None:
        self.rows += len(frame)
        for col, kind in kinds.items():
            series = frame[col]
            self.missing[col] = self.missing.get(col, 0) + int(series.isna().sum())
            if kind.kind in ("numeric", "integer") and series.notna().any():
                self.low[col] = min(self.low.get(col, np.inf), float(series.min()))
                self.high[col] = max(self.high.get(col, -np.inf), float(series.max()))
            elif kind.kind == "categorical":
                seen = self.values.setdefault(col, set())
                if len(seen) <= cap:
                    seen.update(series.dropna().unique().tolist())


def contract_columns(
    kinds: dict[str, ColumnKind], stats: RunningStats, margin: float | None, cap: int, target: str
) -> dict[str, dict[str, Any]]:
    """The data set's contract: dtypes, nullability, ranges with a margin (none when
    ``margin`` is None), allowed values (up to ``cap`` of them)."""
    columns = {}
    for col, kind in kinds.items():
        spec: dict[str, Any] = {"dtype": CONTRACT_DTYPE.get(kind.kind, "category")}
        spec["nullable"] = stats.missing.get(col, 0) > 0
        if col in stats.low and margin is not None:
            low, high = stats.low[col], stats.high[col]
            pad = margin * (high - low)
            spec["min"], spec["max"] = low - pad, high + pad
            if low >= 0:
                spec["min"] = max(0.0, spec["min"])
        seen = stats.values.get(col, set())
        if kind.kind == "categorical" and (col == target or len(seen) <= cap):
            spec["allowed"] = sorted(str(v) for v in seen)
        columns[col] = spec
    return columns
