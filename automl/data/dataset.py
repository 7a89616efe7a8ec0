"""From a data set's config to validated train and test frames: load, clean, check, split."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from automl.config import build, to_plain
from automl.data.contract import Contract
from automl.data.splits import RowKeys, Splitter, duplicate_units
from automl.errors import ConfigError, DataError

log = logging.getLogger(__name__)
TASKS = ("binary", "multiclass", "regression")


@dataclass
class RowRoles:
    """Columns that say how rows are split and weighted (``evaluation.group_column``,
    ``time_column``, ``weight_column``); the group and weight columns are no model input."""

    group: str | None = None
    time: str | None = None
    weight: str | None = None
    duplicates_together: bool = True  # exact duplicate rows on one side of every split

    @classmethod
    def of(cls, evaluation: Any) -> RowRoles:
        return cls(
            evaluation.group_column,
            evaluation.time_column,
            evaluation.weight_column,
            evaluation.keep_duplicates_together,
        )

    @property
    def not_inputs(self) -> list[str]:
        return [c for c in (self.group, self.weight) if c is not None]


@dataclass
class Dataset:
    """A loaded data set: typed train/test frames (target included) and what it predicts."""

    name: str
    target: str
    task: str
    classes: list[str] | None
    contract: Contract
    clean: dict[str, Any]
    train: pd.DataFrame
    test: pd.DataFrame
    splitter: Splitter = field(default_factory=Splitter)
    roles: RowRoles = field(default_factory=RowRoles)

    @property
    def features(self) -> list[str]:
        skip = {self.target, *self.roles.not_inputs}
        return [c for c in self.contract.columns if c not in skip]

    @property
    def input_contract(self) -> Contract:
        """The contract of the model's rows: every column but the group and weight ones."""
        return self.contract.without(*self.roles.not_inputs)

    def xy(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        """Features and the encoded target (class index, or the float value)."""
        return frame[self.features], encode_target(frame[self.target], self.classes)

    def keys(self, frame: pd.DataFrame) -> RowKeys:
        """What splitting ``frame``'s rows needs: groups (or duplicate rows) and times."""
        return row_keys(frame, self.splitter.kind, self.roles)

    def weights(self, frame: pd.DataFrame) -> np.ndarray | None:
        """Each row's weight (``evaluation.weight_column``), or None: every row counts once."""
        return None if self.roles.weight is None else frame[self.roles.weight].to_numpy(float)


def clean(frame: pd.DataFrame, spec: dict[str, Any]) -> pd.DataFrame:
    """Apply the declarative cleaning of a data set (renames, drops, NA markers, ...)."""
    frame = frame.rename(columns=lambda c: c.strip() if isinstance(c, str) else c)
    frame = frame.rename(columns=spec.get("rename") or {})
    frame = frame.drop(columns=[c for c in spec.get("drop") or [] if c in frame.columns])
    markers = set(spec.get("na_values") or [])
    suffixes = spec.get("strip_suffix") or {}
    for col in frame.columns:
        series = frame[col]
        if not (pd.api.types.is_string_dtype(series) or series.dtype == object):
            continue
        if spec.get("strip_whitespace", True):  # strings only: mixed columns keep their numbers
            series = map_distinct(series, strip)
        if markers:
            series = series.where(~series.isin(markers), np.nan)
        if col in suffixes:
            series = series.str.removesuffix(suffixes[col])
        frame[col] = series
    return frame


def strip(value: Any) -> Any:
    """A string without leading and trailing whitespace; anything else as it is."""
    return value.strip() if isinstance(value, str) else value


def map_distinct(series: pd.Series, function: Callable[[Any], Any]) -> pd.Series:
    """``series.map(function)``, calling ``function`` once per distinct value of a string
    column (categories repeat: a million rows of a dozen values are a dozen calls). Other
    columns are mapped value by value (``1``, ``1.0`` and ``True`` are one value to
    ``factorize``, not to ``str``). Missing values stay missing."""
    if not isinstance(series.dtype, pd.StringDtype):
        return series.map(function)
    codes, distinct = pd.factorize(series)
    if 2 * len(distinct) > len(series):  # mostly distinct: one call per row costs less
        return series.map(function)
    mapped = pd.Series(distinct).map(function).array
    return pd.Series(mapped.take(codes, allow_fill=True), index=series.index, name=series.name)


def infer_task(target: pd.Series, max_classes: int) -> str:
    """binary, multiclass or regression from the target's values."""
    values = target.dropna()
    n = values.nunique()
    if n == 2:
        return "binary"
    if not pd.api.types.is_numeric_dtype(values):
        return "multiclass"
    integral = bool(np.all(np.mod(values, 1) == 0))
    return "multiclass" if integral and n <= max_classes else "regression"


def class_order(target: pd.Series, task: str, positive: Any) -> list[str] | None:
    """Class labels in model order; for binary the positive class comes last."""
    if task == "regression":
        return None
    classes = sorted(target.dropna().unique().tolist())
    if task == "binary":
        if len(classes) != 2:
            raise DataError(f"binary target has {len(classes)} classes: {classes}")
        if positive is not None:
            positive = str(positive)
            if positive not in classes:
                raise ConfigError(
                    f"dataset.positive_class '{positive}' is not one of the classes {classes}"
                )
            classes = [c for c in classes if c != positive] + [positive]
    return classes


def encode_target(target: pd.Series, classes: list[str] | None) -> np.ndarray:
    """Class labels to indices (0..k-1); a label outside ``classes`` is a DataError."""
    if classes is None:
        return target.to_numpy(dtype=float)
    codes = pd.Index(classes).get_indexer(target)
    if (codes < 0).any():
        bad = sorted(set(target[codes < 0].astype(str)))[:5]
        raise DataError(f"target '{target.name}' has labels outside the classes {classes}: {bad}")
    return codes.astype(int)


def load_frame(source_node: Any, clean_spec: dict[str, Any]) -> pd.DataFrame:
    """Build the source from its config node, load it and clean it."""
    return clean(build(source_node).load(), clean_spec)


def load_dataset(cfg: Any, evaluation: Any, seed: int) -> Dataset:
    """Load, clean, validate and split the data set described by ``cfg`` (the dataset node)."""
    clean_spec = to_plain(cfg.clean)
    frame = load_frame(cfg.source, clean_spec)
    target = cfg.target
    if target not in frame.columns:
        raise DataError(f"{cfg.name}: target column '{target}' not in the data")
    missing = int(frame[target].isna().sum())
    if missing:
        log.warning("%s: dropping %d rows with no target value", cfg.name, missing)
        frame = frame[frame[target].notna()]
    task = cfg.task or infer_task(frame[target], evaluation.max_classes)
    if task not in TASKS:
        raise ConfigError(f"dataset.task must be one of {TASKS}, got '{task}'")
    declared = Contract.from_config(to_plain(cfg.contract), name=cfg.name)
    if target not in declared.columns:
        declared.columns[target] = declared.complete(frame[[target]]).columns[target]
        if task != "regression":
            declared.columns[target].dtype = "category"
    contract = declared.complete(frame)
    contract.columns[target].nullable = False
    frame = contract.validate(frame)
    roles = RowRoles.of(evaluation)
    check_roles(frame, roles, target)
    splitter = Splitter(evaluation.split, evaluation.stratify, seed)
    classification = task != "regression"
    if cfg.test_source is not None:
        train = frame
        test = contract.validate(load_frame(cfg.test_source, clean_spec))
        check_roles(test, roles, target)
    else:
        labels = frame[target].to_numpy()
        keys = row_keys(frame, splitter.kind, roles)
        train_rows, test_rows = splitter.holdout(labels, keys, evaluation.test_size, classification)
        train, test = frame.iloc[train_rows], frame.iloc[test_rows]
    classes = class_order(train[target], task, cfg.positive_class)
    encode_target(train[target], classes)
    test = known_classes(test, target, classes, cfg.name)
    log.info(
        "%s: %s task, %d train rows, %d test rows, %d features",
        cfg.name,
        task,
        len(train),
        len(test),
        len(contract.columns) - 1 - len(roles.not_inputs),
    )
    return Dataset(
        cfg.name, target, task, classes, contract, clean_spec, train, test, splitter, roles
    )


def check_roles(frame: pd.DataFrame, roles: RowRoles, target: str) -> None:
    """The group, time and weight columns are there, complete, and weights are finite and
    not negative; a DataError names the column (and a row) otherwise."""
    for key, column in (
        ("group_column", roles.group),
        ("time_column", roles.time),
        ("weight_column", roles.weight),
    ):
        if column is None:
            continue
        if column not in frame.columns or column == target:
            raise ConfigError(
                f"evaluation.{key}='{column}' is not a column of the data"
                + (" (it is the target)" if column == target else "")
            )
        values = frame[column]
        if values.isna().any():
            row = values.index[values.isna().to_numpy()][0]
            raise DataError(f"evaluation.{key} '{column}' has a missing value (row {row})")
    if roles.weight is not None:
        weights = pd.to_numeric(frame[roles.weight], errors="coerce").to_numpy(float)
        bad = ~np.isfinite(weights) | (weights < 0)
        if bad.any():
            row = frame.index[bad][0]
            raise DataError(
                f"weight column '{roles.weight}' needs finite values >= 0; row {row} has "
                f"{frame[roles.weight].iloc[int(np.flatnonzero(bad)[0])]!r}"
            )
        if not weights.sum() > 0:
            raise DataError(f"weight column '{roles.weight}' is 0 on every row")


def row_keys(frame: pd.DataFrame, kind: str, roles: RowRoles) -> RowKeys:
    """The rows' units (groups, or duplicate rows kept together) and times, for ``kind``."""
    if kind == "group":
        if roles.group is None:
            raise ConfigError("evaluation.split=group needs evaluation.group_column")
        return RowKeys(groups=pd.factorize(frame[roles.group])[0])
    if kind == "time":
        if roles.time is None:
            raise ConfigError("evaluation.split=time needs evaluation.time_column")
        return RowKeys(times=frame[roles.time].to_numpy())
    duplicates = duplicate_units(frame) if roles.duplicates_together else None
    return RowKeys(groups=duplicates)


def known_classes(
    test: pd.DataFrame, target: str, classes: list[str] | None, name: str
) -> pd.DataFrame:
    """The test rows whose class the training rows have (a group or time split can leave
    a class out of them: the model cannot predict it); the others are dropped, logged."""
    if classes is None:
        return test
    known = test[target].isin(classes).to_numpy()
    if not known.all():
        unseen = sorted(set(test[target][~known].astype(str)))[:5]
        log.warning(
            "%s: %d test row(s) of classes no training row has (%s) are not scored",
            name,
            int((~known).sum()),
            ", ".join(unseen),
        )
        test = test[known]
    encode_target(test[target], classes)
    return test
