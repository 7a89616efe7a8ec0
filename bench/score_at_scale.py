"""Benchmark: batch scoring at scale, Parquet to Parquet, against the bare LightGBM booster.

Builds a Parquet file of ``--rows`` rows (1,000,000 by default) by resampling the rows of
the official adult test file, trains an adult LightGBM model with the framework (one
trial), then measures in the same run:

  * ours: ``automl.services.scoring.predict_file`` end to end (load the bundle, stream,
    clean, check the contract, encode, predict, write Parquet), in a child process, with
    that process's peak RSS (``VmHWM``: the interpreter and libraries included);
  * bare: ``Booster.predict`` on the already-encoded matrix (encoded once with the fitted
    pipeline's feature step), with all cores; timed before and after ours, the faster
    of the two is kept.

Targets: >= 100,000 rows/s end to end, >= 50% of the bare booster's rows/s, peak RSS
<= 1 GB.

Usage: python bench/score_at_scale.py [--data-dir ../shared/data] [--rows 1000000]
       [--chunk-size 100000] [--n-jobs 2] [--model RUN_DIR (skip training)]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
ADULT_COLUMNS = list(OmegaConf.load(ROOT / "conf" / "dataset" / "adult.yaml").source.reader.names)
TARGET_ROWS_PER_S = 100_000
TARGET_RATIO = 0.5
TARGET_RSS_MB = 1024


def build_input(data_dir: Path, rows: int, path: Path, seed: int = 0) -> Path:
    """``rows`` rows resampled from adult-test.csv (label stripped of "." and dropped)."""
    test = pd.read_csv(
        data_dir / "adult-test.csv",
        header=None,
        names=ADULT_COLUMNS,
        skipinitialspace=True,
        comment="|",
    )
    test["income"] = test["income"].str.removesuffix(".")
    test = test.drop(columns="income")
    picks = np.random.default_rng(seed).integers(0, len(test), rows)
    test.iloc[picks].reset_index(drop=True).to_parquet(path, index=False)
    return path


def train_model(run: Path) -> Path:
    """An adult LightGBM model trained by the framework (one trial), in ``run``."""
    from hydra import compose, initialize_config_module

    from automl.config import register_schemas
    from automl.services.training import train

    register_schemas()
    overrides = [
        "dataset=adult",
        "model=lgbm",
        "search.n_trials=1",
        "evaluation.plots=false",
        "tracking=none",
        "registry.enabled=false",
    ]
    with initialize_config_module("automl.conf", version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    train(cfg, run)
    return run


def booster_of(estimator):
    """The LightGBM booster inside the pipeline's last step (and its best iteration)."""
    while not hasattr(estimator, "booster_"):
        estimator = estimator.estimator_
    return estimator.booster_, estimator.best_iteration_ or None


def bare_predict(run: Path, source: Path) -> tuple[np.ndarray, object, int | None]:
    """The encoded matrix of ``source`` and the booster to time on it."""
    from automl.bundle.model import load_model

    model = load_model(run)
    frame = pd.read_parquet(source)
    matrix = model.pipeline[:-1].transform(model.prepare(frame))
    booster, best = booster_of(model.pipeline[-1])
    return np.ascontiguousarray(matrix), booster, best


def time_bare(matrix: np.ndarray, booster, best: int | None) -> float:
    started = time.perf_counter()
    booster.predict(matrix, num_iteration=best, num_threads=os.cpu_count() or 1)
    return len(matrix) / (time.perf_counter() - started)


def score_in_child(run: Path, source: Path, out: Path, chunk_size: int, n_jobs: int) -> dict:
    """``predict_file`` in a child process: its wall seconds, summary and peak RSS."""
    result = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            json.dumps([str(run), str(source), str(out), chunk_size, n_jobs]),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        sys.exit(f"scoring failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def child(spec: str) -> None:
    """Run in the child: compose the predict config as the CLI would, score, report."""
    import resource

    from hydra import compose, initialize_config_module

    from automl.config import register_schemas
    from automl.services.scoring import predict_file

    run, source, out, chunk_size, n_jobs = json.loads(spec)
    register_schemas()
    overrides = [
        f"model={run}",
        f"input={source}",
        f"output={out}",
        f"chunk_size={chunk_size}",
        f"n_jobs={n_jobs}",
        "progress=false",
    ]
    with initialize_config_module("automl.conf.apps", version_base="1.3"):
        cfg = compose("predict", overrides=overrides)
    started = time.perf_counter()
    summary = predict_file(cfg)
    seconds = time.perf_counter() - started
    # VmHWM: this process's peak RSS (ru_maxrss would count the parent's, inherited at fork)
    status = Path("/proc/self/status")
    if status.is_file():
        peak_kb = next(int(line.split()[1]) for line in status.open() if line.startswith("VmHWM"))
    else:
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({**summary.as_dict(), "wall_seconds": seconds, "peak_mb": peak_kb / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk-size", type=int, default=100_000)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--model", help="a trained adult run directory (skips training)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child)
    data_dir = Path(args.data_dir)
    if not (data_dir / "adult-test.csv").is_file():
        sys.exit(f"adult-test.csv not found in {data_dir} (pass --data-dir)")
    os.environ["AUTOML_DATA_DIR"] = str(data_dir)

    with tempfile.TemporaryDirectory(prefix="score-at-scale-") as tmp:
        work = Path(tmp)
        source = build_input(data_dir, args.rows, work / "input.parquet")
        started = time.perf_counter()
        run = Path(args.model) if args.model else train_model(work / "run")
        trained = time.perf_counter() - started
        matrix, booster, best = bare_predict(run, source)
        bare = [time_bare(matrix, booster, best)]
        ours = score_in_child(run, source, work / "scored.parquet", args.chunk_size, args.n_jobs)
        bare.append(time_bare(matrix, booster, best))
        scored = pd.read_parquet(work / "scored.parquet", columns=["prediction"])
        assert len(scored) == args.rows == ours["rows_scored"], "rows were lost"

    rows_per_s = args.rows / ours["wall_seconds"]
    bare_best = max(bare)
    ratio = rows_per_s / bare_best
    print(
        f"\nscore at scale: {args.rows:,} adult rows, Parquet -> Parquet, chunk_size="
        f"{args.chunk_size:,}, n_jobs={args.n_jobs}, {os.cpu_count()} CPUs, "
        f"{booster.num_trees()} trees (best iteration {best}); "
        f"model {'given' if args.model else f'trained in {trained:.0f} s'}"
    )
    header = f"{'':<28}{'rows/s ours':>14}{'rows/s bare':>14}{'ratio':>8}{'peak RSS MB':>14}"
    print(header)
    print("-" * len(header))
    print(
        f"{'predict_file end to end':<28}{rows_per_s:>14,.0f}{bare_best:>14,.0f}"
        f"{ratio:>8.0%}{ours['peak_mb']:>14,.0f}"
    )
    print(
        f"(bare runs: {', '.join(f'{b:,.0f}' for b in bare)} rows/s; ours: "
        f"{ours['wall_seconds']:.1f} s, of which {ours['seconds']:.1f} s after loading the "
        f"bundle, {ours['rows_per_second']:,.0f} rows/s)"
    )
    checks = [
        (f"end to end >= {TARGET_ROWS_PER_S:,} rows/s", rows_per_s >= TARGET_ROWS_PER_S),
        (f">= {TARGET_RATIO:.0%} of bare booster rows/s", ratio >= TARGET_RATIO),
        (f"peak RSS <= {TARGET_RSS_MB} MB", ours["peak_mb"] <= TARGET_RSS_MB),
    ]
    for what, ok in checks:
        print(f"  [{'met' if ok else 'NOT met'}] {what}")


if __name__ == "__main__":
    main()
