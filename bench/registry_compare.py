"""Benchmark: `python -m automl.registry compare` with 2,000 runs in the registry.

Builds a registry of 2,000 versions (as 2,000 training runs would leave) in a temp
folder and times the CLI end to end (process start included): one page sorted by a
metric with a filter, and the CSV export of every matching row.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from automl.bundle.registry import INSERT_VERSION, Registry


def timed(args: list[str], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "automl.registry", *args], check=True, capture_output=True
        )
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        registry = Registry(root / "registry.db", root / "models")
        aucs = np.random.default_rng(0).uniform(0.8, 0.95, 2000)
        with registry.connect(write=True) as db:
            db.execute(
                INSERT_VERSION,
                [
                    {
                        "name": f"team{i % 8}.adult",
                        "version": i + 1,
                        "bundle": tmp,
                        "run_dir": None,
                        "project": f"team{i % 8}",
                        "dataset": "adult",
                        "family": ["lgbm", "xgb", "rf"][i % 3],
                        "task": "binary",
                        "metrics": json.dumps({"auc": a, "log_loss": 1 - a, "accuracy": a - 0.05}),
                        "created_at": "2026-11-28",
                    }
                    for i, a in enumerate(aucs)
                ],
            )
        base = ["--registry", tmp, "compare", "--dataset", "adult", "--metric", "auc"]
        page = timed(base + ["--family", "lgbm", "--min", "0.85", "--page", "3"])
        export = timed(base + ["--csv", str(root / "all.csv")])
        baseline = timed(["--help"])
    print("registry compare, 2,000 runs, median of 5 (process start included)")
    print(f"{'command':<46}{'seconds':>9}")
    print(f"{'python -m automl.registry --help (baseline)':<46}{baseline:>9.2f}")
    print(f"{'compare, filtered, page 3':<46}{page:>9.2f}")
    print(f"{'compare, CSV export of 2,000 rows':<46}{export:>9.2f}")


if __name__ == "__main__":
    main()
