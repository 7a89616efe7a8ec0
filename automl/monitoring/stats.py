"""Drift tests: each compares a column's reference shares with its current counts.

A test is a config node with ``_target_`` (``conf/common/monitoring/*.yaml``, ``drift.numeric`` /
``drift.categorical`` / ``drift.columns``) built once and called with a ``Histogram``:
the reference's shares and the window's counts over the same buckets (numeric: the
profile's quantile bins; categorical: its named categories plus one "other" bucket).
Statistical tests (KS, chi-square) flag a p-value below ``p_value``; distances
(Wasserstein, Jensen-Shannon, PSI) flag a value at or above ``threshold``. Every result is
a finite number: empty buckets, constant columns and one-bucket profiles give 0, not NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon

from automl.errors import ConfigError


@dataclass(frozen=True)
class Histogram:
    """One column's reference shares and current counts over the same buckets.

    Numeric: bucket ``i`` holds ``edges[i-1] <= x < edges[i]`` (open-ended at both
    ends); ``low``/``high`` cover both samples' ranges, ``scale`` is the reference std
    (the Wasserstein normaliser); ``reference_means``/``current_means`` are each bucket's
    mean value (0 where empty). Categorical: ``labels`` name the buckets.
    """

    kind: str  # numeric | categorical
    reference: np.ndarray  # shares per bucket, summing to 1
    current: np.ndarray  # counts per bucket
    reference_rows: int  # values behind the reference shares
    edges: np.ndarray | None = None
    low: float = 0.0
    high: float = 0.0
    scale: float = 1.0
    reference_means: np.ndarray | None = None
    current_means: np.ndarray | None = None
    labels: tuple[str, ...] = ()

    @property
    def rows(self) -> int:
        return int(self.current.sum())

    @property
    def shares(self) -> np.ndarray:
        """The current counts as shares (zeros for an empty window)."""
        total = self.current.sum()
        return self.current / total if total else np.zeros(len(self.current))

    def cdf_gap(self) -> np.ndarray:
        """|F_ref - F_cur| just below each inner edge (numeric)."""
        return np.abs(np.cumsum(self.reference)[:-1] - np.cumsum(self.shares)[:-1])


def result(method: str, statistic: float, threshold: float, drifted: bool, **extra: Any) -> dict:
    """A test's verdict as plain JSON-ready values."""
    return {
        "method": method,
        "statistic": round(float(statistic), 6),
        "threshold": float(threshold),
        "drifted": bool(drifted),
        **{k: round(float(v), 6) for k, v in extra.items()},
    }


def needs_numeric(method: str, hist: Histogram) -> None:
    if hist.kind != "numeric":
        raise ConfigError(
            f"the {method} drift test needs a numeric column; use chi_square, "
            "jensen_shannon or psi for categorical ones (drift.columns / drift.categorical)"
        )


@dataclass(frozen=True)
class KolmogorovSmirnov:
    """Two-sample KS on the profile's bins: the largest CDF gap at the bin edges (a lower
    bound of the exact statistic), p-value from the asymptotic two-sample distribution."""

    p_value: float = 0.05

    def __call__(self, hist: Histogram) -> dict:
        needs_numeric("ks", hist)
        gap = hist.cdf_gap()
        d = float(gap.max()) if len(gap) else 0.0
        n, m = hist.reference_rows, hist.rows
        p = float(stats.kstwo.sf(d, max(1, round(n * m / (n + m))))) if d > 0 else 1.0
        return result("ks", d, self.p_value, p < self.p_value, p_value=p)


@dataclass(frozen=True)
class ChiSquare:
    """Pearson's chi-square of the current counts against the reference shares.

    Buckets expected to hold fewer than ``min_expected`` values are pooled (the test is
    unreliable below it); buckets the reference never saw are left out (the new-category
    signal reports them).
    """

    p_value: float = 0.05
    min_expected: float = 5.0

    def __call__(self, hist: Histogram) -> dict:
        seen = hist.reference > 0
        observed, shares = hist.current[seen].astype(float), hist.reference[seen]
        expected = shares / shares.sum() * observed.sum()
        small = expected < self.min_expected
        if small.any():
            observed = np.append(observed[~small], observed[small].sum())
            expected = np.append(expected[~small], expected[small].sum())
            if expected[-1] < self.min_expected and len(expected) > 1:  # pool it on
                observed = np.append(observed[:-2], observed[-2:].sum())
                expected = np.append(expected[:-2], expected[-2:].sum())
        if len(expected) < 2 or observed.sum() == 0:
            return result("chi_square", 0.0, self.p_value, False, p_value=1.0)
        stat, p = stats.chisquare(observed, expected)
        return result("chi_square", stat, self.p_value, p < self.p_value, p_value=p)


@dataclass(frozen=True)
class JensenShannon:
    """Jensen-Shannon distance (natural log, between 0 and sqrt(ln 2)) of the shares."""

    threshold: float = 0.1

    def __call__(self, hist: Histogram) -> dict:
        distance = float(jensenshannon(hist.reference, hist.shares)) if hist.rows else 0.0
        return result("jensen_shannon", distance, self.threshold, distance >= self.threshold)


@dataclass(frozen=True)
class Wasserstein:
    """Wasserstein-1 distance divided by the reference std (Evidently's normed
    Wasserstein), each bin's share placed at its mean value (the profile's, the window's):
    no shift within or across bins goes unseen. A constant reference (std 0) is scaled by
    its value's magnitude instead."""

    threshold: float = 0.1

    def __call__(self, hist: Histogram) -> dict:
        needs_numeric("wasserstein", hist)
        if not hist.rows:
            return result("wasserstein", 0.0, self.threshold, False)
        ref, cur = hist.reference > 0, hist.current > 0
        distance = (
            stats.wasserstein_distance(
                hist.reference_means[ref],
                hist.current_means[cur],
                hist.reference[ref],
                hist.current[cur],
            )
            / hist.scale
        )
        return result("wasserstein", distance, self.threshold, distance >= self.threshold)


@dataclass(frozen=True)
class PSI:
    """Population stability index. Numeric bins are merged into ``bins`` groups of about
    equal reference share (PSI's usual deciles); shares are floored at ``floor`` so an
    empty bucket counts as rare, not infinite."""

    threshold: float = 0.1
    bins: int = 10
    floor: float = 1e-4

    def __call__(self, hist: Histogram) -> dict:
        ref, cur = hist.reference, hist.shares
        if hist.kind == "numeric" and len(ref) > self.bins:
            middle = np.cumsum(ref) - ref / 2
            group = np.minimum((middle * self.bins).astype(int), self.bins - 1)
            ref = np.bincount(group, weights=ref, minlength=self.bins)
            cur = np.bincount(group, weights=cur, minlength=self.bins)
        if not hist.rows:
            return result("psi", 0.0, self.threshold, False)
        ref, cur = np.maximum(ref, self.floor), np.maximum(cur, self.floor)
        value = float(np.sum((cur - ref) * np.log(cur / ref)))
        return result("psi", value, self.threshold, value >= self.threshold)
