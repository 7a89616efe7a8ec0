"""Benchmark: where the budget run's memory goes, by phase and process.

Trains ``model=auto`` on the 1M-row, 50-column synthetic set of ``bench/scaling.py``
(``search.time_budget``, 150 s by default) in a child process and samples, every 0.5 s,
the RSS of that process and the sum of its trial workers' RSS (psutil). Prints the samples
every 10 s and the peaks; the training log (``train.log`` in the run folder) says when
each phase began. Figures are printed, never asserted.

Usage: python bench/budget_memory.py [--budget 150] [--rows 1000000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scaling  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=150)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="budget-memory-") as tmp:
        work = Path(tmp)
        data = work / "synthetic.parquet"
        scaling.synthetic(args.rows, 0).to_parquet(data, index=False)
        overrides = [
            *scaling.dataset_overrides("synthetic", data, scaling.synthetic_conf(work / "conf")),
            "model=auto",
            f"search.time_budget={args.budget}",
            "tracking=none",
            "registry.enabled=false",
            "progress=false",
            f"hydra.run.dir={work / 'run'}",
        ]
        log = (work / "out.log").open("w")
        child = subprocess.Popen(
            [sys.executable, "-m", "automl", *overrides], cwd=ROOT, stdout=log, stderr=log
        )
        main_process, samples, started = psutil.Process(child.pid), [], time.monotonic()
        while child.poll() is None:
            try:
                own = main_process.memory_info().rss
                workers = sum(c.memory_info().rss for c in main_process.children(recursive=True))
            except psutil.Error:
                continue
            samples.append((time.monotonic() - started, own / 2**20, workers / 2**20))
            time.sleep(0.5)
        print(f"model=auto search.time_budget={args.budget}, {args.rows:,} rows x 50 columns")
        print(f"{'seconds':>8}{'main MB':>10}{'workers MB':>12}")
        for t, own, workers in samples[::20]:
            print(f"{t:8.0f}{own:10,.0f}{workers:12,.0f}")
        peak = max(samples, key=lambda s: s[1] + s[2])
        print(
            f"peak of the tree at {peak[0]:.0f} s: main {peak[1]:,.0f} MB + workers "
            f"{peak[2]:,.0f} MB; main alone {max(s[1] for s in samples):,.0f} MB"
        )
        print("phases (train.log):")
        for line in (work / "run" / "train.log").read_text().splitlines():
            if any(k in line for k in ("search:", "refit", "model fitted", "test metrics")):
                print("  " + line[:140])


if __name__ == "__main__":
    main()
