"""Benchmark: batch scoring in one process (engine=local) and on Dask (engine=dask).

Builds a Parquet file of ``--rows`` adult rows (1,000,000 by default, resampled from the
official test file, written by pandas: one row group) and trains an adult LightGBM model
(one trial), as bench/score_at_scale.py does, then scores the file

  * engine=local: ``predict_file`` in a child process (``n_jobs`` threads), with that
    process's peak RSS;
  * engine=dask with 1 and 2 workers (one thread each): a LocalCluster made by the
    engine's own ``DaskEngine.client``, scored through ``engine.address``, then each
    worker's peak RSS (``VmHWM``: the interpreter, libraries and model included).

Rows/s are the summary's (after the bundle is loaded or the cluster is up; the workers'
model loading included). Figures are printed, not checked.

Usage: python bench/dask_scoring.py [--data-dir ../shared/data] [--rows 1000000]
       [--chunk-size 100000] [--workers 1 2] [--model RUN_DIR (skip training)]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from score_at_scale import ROOT, build_input, score_in_child, train_model  # noqa: E402

from automl.config import compose_config  # noqa: E402
from automl.services.distributed_scoring import DaskEngine  # noqa: E402
from automl.services.scoring import predict_file  # noqa: E402


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM), in MB."""
    status = Path("/proc/self/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if "VmHWM" in line) / 1024


def score_on_dask(run: Path, source: Path, out: Path, chunk_size: int, workers: int) -> dict:
    """``predict_file`` with engine=dask on a new LocalCluster of ``workers`` workers: the
    summary, and each worker's peak RSS."""
    engine = DaskEngine(workers=workers)
    with engine.client() as client:
        overrides = [
            f"model={run}",
            f"input={source}",
            f"output={out}",
            f"chunk_size={chunk_size}",
            "progress=false",
            "engine=dask",
            f"engine.address={client.scheduler_info()['address']}",
        ]
        summary = predict_file(compose_config("automl.conf.apps", "predict", overrides))
        peaks = sorted(client.run(peak_rss_mb).values())
    return {**summary.as_dict(), "peaks": peaks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk-size", type=int, default=100_000)
    parser.add_argument("--n-jobs", type=int, default=2, help="engine=local's threads")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--model", help="a trained adult run directory (skips training)")
    args = parser.parse_args()
    data_dir = Path(args.data_dir)
    if not (data_dir / "adult-test.csv").is_file():
        sys.exit(f"adult-test.csv not found in {data_dir} (pass --data-dir)")
    os.environ["AUTOML_DATA_DIR"] = str(data_dir)

    rows = []
    with tempfile.TemporaryDirectory(prefix="dask-scoring-") as tmp:
        work = Path(tmp)
        source = build_input(data_dir, args.rows, work / "input.parquet")
        run = Path(args.model) if args.model else train_model(work / "run")
        local = score_in_child(run, source, work / "local.parquet", args.chunk_size, args.n_jobs)
        rows.append((f"local, n_jobs={args.n_jobs}", local["rows_per_second"], [local["peak_mb"]]))
        expected = pd.read_parquet(work / "local.parquet")
        for workers in args.workers:
            out = work / f"dask-{workers}"
            result = score_on_dask(run, source, out, args.chunk_size, workers)
            same = pd.read_parquet(out).equals(expected)
            label = f"dask, {workers} worker(s){'' if same else ' (OUTPUT DIFFERS)'}"
            rows.append((label, result["rows_per_second"], result["peaks"]))

    print(
        f"\ndask scoring: {args.rows:,} adult rows, Parquet -> Parquet, chunk_size="
        f"{args.chunk_size:,}, {os.cpu_count()} CPUs"
    )
    header = f"{'':<28}{'rows/s':>12}  peak RSS MB (per process / worker)"
    print(header)
    print("-" * len(header))
    for label, rate, peaks in rows:
        print(f"{label:<28}{rate:>12,.0f}  {', '.join(f'{p:,.0f}' for p in peaks)}")


if __name__ == "__main__":
    main()
