"""Drift check of a 1,000,000-row x 15-column window against a reference profile.

Prints seconds and rows/s for ``check_drift`` (the issue's bar: under 10 s). The profile
is built from 50,000 rows of synthetic data (9 numeric, 6 categorical columns, and
binary-classifier probabilities); the window is drawn from the same generator with two
columns moved, so the tests, signals and histograms all do their full work.

    python bench/monitor_at_scale.py [rows]
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd

from automl.monitoring.drift import check_drift, load_monitoring
from automl.monitoring.profile import build_profile

NUMERIC, CATEGORICAL = 9, 6


def frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = {f"x{i}": rng.gamma(2.0 + i, 10.0, rows) for i in range(NUMERIC)}
    for i in range(CATEGORICAL):
        levels = np.array([f"c{i}_{k}" for k in range(5 + 8 * i)])
        data[f"cat{i}"] = levels[rng.zipf(1.6, rows) % len(levels)]
    out = pd.DataFrame(data)
    out.loc[rng.random(rows) < 0.02, "x0"] = np.nan
    return out


def main(rows: int = 1_000_000) -> None:
    reference = frame(50_000, seed=0)
    proba = np.random.default_rng(1).random(len(reference))
    config = load_monitoring()
    profile = build_profile(
        reference,
        np.column_stack([1 - proba, proba]),
        ["no", "yes"],
        config.profile.bins,
        config.profile.top_categories,
    )
    window = frame(rows, seed=2)
    window["x1"] = window["x1"] * 1.2  # two columns moved
    window["cat1"] = window["cat1"].where(np.arange(rows) % 5 != 0, "brand-new")
    p = np.random.default_rng(3).random(rows)
    window["prediction"] = np.where(p > 0.5, "yes", "no")
    window["proba_no"], window["proba_yes"] = 1 - p, p
    started = time.perf_counter()
    report = check_drift(profile, window, config)
    seconds = time.perf_counter() - started
    print(
        f"check_drift: {rows:,} rows x {NUMERIC + CATEGORICAL} columns in {seconds:.2f} s "
        f"({rows / seconds:,.0f} rows/s); status {report['status']}, drifted: "
        f"{', '.join(report['drifted_columns'])}"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
