"""How rows are split: the held-out test rows, and the search's CV folds (or holdout).

One rule for both, chosen by ``evaluation.split``:

- ``random``: shuffled, stratified by class for classification (``evaluation.stratify``).
  Exact duplicate rows form one unit that is never on both sides. A class with too few
  units to be split (one, for a holdout; fewer than the folds, for CV) is kept on the
  training side: never tested nor validated, so every model is fitted on every class.
- ``group``: whole groups (``evaluation.group_column``) on one side only; stratified
  group folds for classification.
- ``time``: ordered by ``evaluation.time_column``: training rows are older than the rows
  they are tested or validated on (rows of equal time stay together).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import (
    GroupKFold,
    GroupShuffleSplit,
    KFold,
    StratifiedGroupKFold,
    StratifiedKFold,
    TimeSeriesSplit,
    train_test_split,
)

from automl.errors import ConfigError, DataError

log = logging.getLogger(__name__)
SPLITS = ("random", "group", "time")
Fold = tuple[np.ndarray, np.ndarray]


@dataclass
class RowKeys:
    """What splitting knows of each row beyond its label: its unit (group, or the copies
    of a duplicated row) and its time."""

    groups: np.ndarray | None = None  # unit codes 0..n-1 (None: each row its own unit)
    times: np.ndarray | None = None  # sortable values (time split)

    def take(self, rows: np.ndarray) -> RowKeys:
        """The keys of ``rows`` (positions)."""
        return RowKeys(
            None if self.groups is None else self.groups[rows],
            None if self.times is None else self.times[rows],
        )


def duplicate_units(frame: pd.DataFrame) -> np.ndarray | None:
    """Unit codes that join exact duplicate rows; None when every row is distinct."""
    hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    codes, distinct = pd.factorize(hashes)
    return None if len(distinct) == len(frame) else codes


@dataclass
class Splitter:
    """Splits rows by ``kind`` (random | group | time), with ``seed``; ``stratify``
    applies to classification under ``random`` and ``group``."""

    kind: str = "random"
    stratify: bool = True
    seed: int | None = 0

    def __post_init__(self) -> None:
        if self.kind not in SPLITS:
            raise ConfigError(f"evaluation.split must be one of {SPLITS}, got '{self.kind}'")

    def holdout(self, y: np.ndarray, keys: RowKeys, share: float, classification: bool) -> Fold:
        """(train rows, held-out rows), about ``share`` of the rows held out."""
        n = len(y)
        if self.kind == "time":
            train, held = time_holdout(keys.times, share)
        elif self.kind == "group":
            split = GroupShuffleSplit(n_splits=1, test_size=share, random_state=self.seed)
            train, held = next(split.split(np.zeros(n), y, keys.groups))
        else:
            units = Units(y, keys.groups, classification, needed=2)
            labels = units.labels if classification and self.stratify else None
            pool = np.flatnonzero(~units.rare)
            try:
                kept, out = train_test_split(
                    pool, test_size=share, random_state=self.seed, stratify=stratified(labels, pool)
                )
            except ValueError:  # too few held-out units for one of each class
                log.warning("holdout: too few rows to stratify by class; split at random")
                kept, out = train_test_split(pool, test_size=share, random_state=self.seed)
            # in the shuffled order (a split without rare classes or duplicates is the one
            # train_test_split gives the frame)
            train, held = units.rows(np.concatenate([kept, units.rare_units])), units.rows(out)
            return check_sides(train, held, self.kind)
        return check_sides(np.sort(train), np.sort(held), self.kind)

    def folds(
        self, y: np.ndarray, keys: RowKeys, n_splits: int, classification: bool, repeats: int = 1
    ) -> list[Fold]:
        """CV folds, ``repeats`` times over with fresh shuffles (``time``: once)."""
        if self.kind == "time":
            return time_folds(keys.times, n_splits)
        folds: list[Fold] = []
        for repeat in range(repeats):
            seed = self.seed + repeat
            if self.kind == "group":
                folds += group_folds(y, keys.groups, n_splits, classification, seed)
            else:
                folds += self.random_folds(y, keys.groups, n_splits, classification, seed)
        return folds

    def random_folds(
        self,
        y: np.ndarray,
        groups: np.ndarray | None,
        n_splits: int,
        classification: bool,
        seed: int,
    ) -> list[Fold]:
        """Shuffled (stratified) folds of the units; rare classes' units train in all."""
        units = Units(y, groups, classification, needed=n_splits)
        pool = np.flatnonzero(~units.rare)
        if len(pool) < n_splits:
            raise DataError(
                f"{len(pool)} rows can be validated, fewer than evaluation.cv_folds={n_splits}"
            )
        stratify = classification and self.stratify
        kind = StratifiedKFold if stratify else KFold
        splitter = kind(n_splits=n_splits, shuffle=True, random_state=seed)
        labels = units.labels[pool] if stratify else None
        return [
            (
                np.sort(units.rows(np.concatenate([pool[fit], units.rare_units]))),
                np.sort(units.rows(pool[valid])),
            )
            for fit, valid in splitter.split(pool, labels)
        ]


class Units:
    """Rows gathered into units (a row, or the copies of a duplicated row), with each
    unit's label and whether its class has fewer than ``needed`` units (rare)."""

    def __init__(
        self, y: np.ndarray, groups: np.ndarray | None, classification: bool, needed: int
    ) -> None:
        self.codes = groups
        first = np.arange(len(y)) if groups is None else np.unique(groups, return_index=True)[1]
        self.labels = y[first]
        self.rare = np.zeros(len(first), dtype=bool)
        if classification:
            _, inverse, counts = np.unique(self.labels, return_inverse=True, return_counts=True)
            self.rare = counts[inverse] < needed
        self.rare_units = np.flatnonzero(self.rare)

    def rows(self, units: np.ndarray) -> np.ndarray:
        """The rows of ``units`` (unit numbers)."""
        if self.codes is None:
            return np.asarray(units)
        chosen = np.zeros(len(self.labels), dtype=bool)
        chosen[units] = True
        return np.flatnonzero(chosen[self.codes])


def stratified(labels: np.ndarray | None, pool: np.ndarray) -> np.ndarray | None:
    return None if labels is None else labels[pool]


def group_folds(
    y: np.ndarray, groups: np.ndarray, n_splits: int, classification: bool, seed: int
) -> list[Fold]:
    """Folds of whole groups (stratified by class for classification)."""
    n_groups = len(np.unique(groups))
    if n_groups < n_splits:
        raise DataError(
            f"evaluation.group_column has {n_groups} groups, fewer than "
            f"evaluation.cv_folds={n_splits}"
        )
    if classification:
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    else:
        splitter = GroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return [(np.sort(a), np.sort(b)) for a, b in splitter.split(np.zeros(len(y)), y, groups)]


def time_holdout(times: np.ndarray, share: float) -> Fold:
    """The newest ``share`` of the rows held out; rows at the cut's time held out too."""
    order = np.argsort(times, kind="stable")
    cut = times[order[len(times) - max(1, int(round(share * len(times))))]]
    held = times >= cut
    return np.flatnonzero(~held), np.flatnonzero(held)


def time_folds(times: np.ndarray, n_splits: int) -> list[Fold]:
    """Expanding-window folds over the distinct times: fit on the past, validate on the
    next block."""
    codes, distinct = pd.factorize(pd.Series(times), sort=True)
    if len(distinct) <= n_splits:
        raise DataError(
            f"evaluation.time_column has {len(distinct)} distinct times: too few for "
            f"{n_splits} time-ordered folds"
        )
    folds = []
    for fit, valid in TimeSeriesSplit(n_splits=n_splits).split(np.arange(len(distinct))):
        folds.append((np.flatnonzero(codes <= fit[-1]), np.flatnonzero(np.isin(codes, valid))))
    return folds


def check_sides(train: np.ndarray, held: np.ndarray, kind: str) -> Fold:
    """Both sides of a split have rows, else a DataError naming the split."""
    if not len(train) or not len(held):
        raise DataError(
            f"evaluation.split={kind}: the split leaves no "
            f"{'training' if not len(train) else 'held-out'} rows"
        )
    return train, held
