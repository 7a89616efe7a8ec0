"""Benchmark: the framework against bare LightGBM on adult (same run, same parameters).

Prints
  * fit: our pipeline (contract-checked frame -> features -> early-stopped LightGBM)
    against bare ``lightgbm.LGBMClassifier`` on the already-encoded matrix with the same
    parameters, split and early stopping (the like-for-like figure), and against a fit of
    only the trees early stopping kept, with no validation (a lower bound);
  * job: the whole training job (load, validate, 5-fold CV of one trial, refit,
    evaluate, save) against the same bare fit;
  * predict: rows/s of ``Model.score`` (clean + contract + pipeline) on raw rows against
    the bare booster on the encoded matrix.

Usage: python bench/train_vs_lightgbm.py [--data-dir ../shared/data] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import lightgbm
import pandas as pd
from hydra import compose, initialize_config_module
from sklearn.base import clone

ROOT = Path(__file__).resolve().parents[1]


def timed(fn, repeat: int) -> float:
    """Median wall seconds of ``fn()`` over ``repeat`` runs."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not (Path(args.data_dir) / "adult-train.csv").is_file():
        sys.exit(f"adult-train.csv not found in {args.data_dir} (pass --data-dir)")
    os.environ["AUTOML_DATA_DIR"] = args.data_dir

    from automl.bundle.model import Model
    from automl.config import register_schemas
    from automl.data.dataset import load_dataset
    from automl.search.fit import make_families
    from automl.services.training import manifest, train

    register_schemas()
    overrides = ["dataset=adult", "model=lgbm", "search.n_trials=1", "evaluation.plots=false"]
    with initialize_config_module("automl.conf", version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    data = load_dataset(cfg.dataset, cfg.evaluation, cfg.seed)
    X, y = data.xy(data.train)

    pipeline = make_families(cfg, data.task, cfg.n_jobs)["lgbm"].pipeline  # a family of one
    ours = timed(lambda: clone(pipeline).fit(X, y), args.repeat)
    fitted = clone(pipeline).fit(X, y)
    booster = fitted[-1].estimator_
    encoded = fitted[0].transform(X)
    # like for like: the same split and early stopping, on the already-encoded matrix
    stopping = clone(pipeline[-1])
    bare_stopped = timed(lambda: clone(stopping).fit(encoded, y), args.repeat)
    # lower bound: only the trees early stopping kept, no validation
    params = dict(booster.get_params(), n_estimators=booster.best_iteration_)
    bare = timed(lambda: lightgbm.LGBMClassifier(**params).fit(encoded, y), args.repeat)

    with tempfile.TemporaryDirectory() as tmp:
        job = timed(lambda: train(cfg, Path(tmp) / "run"), 1)

    model = Model(fitted, manifest(cfg, data, {}))
    raw = pd.read_csv(
        Path(args.data_dir) / "adult-test.csv",
        header=None,
        skipinitialspace=True,
        names=list(data.contract.columns),
    ).drop(columns="income")
    raw = pd.concat([raw] * 6, ignore_index=True)  # ~100k rows
    bare_model = lightgbm.LGBMClassifier(**params).fit(encoded, y)
    encoded_test = fitted[0].transform(model.prepare(raw))
    score_s = timed(lambda: model.score(raw), args.repeat)
    bare_s = timed(lambda: bare_model.predict_proba(encoded_test), args.repeat)

    rows = len(raw)
    print(
        f"adult: {len(X)} training rows, {booster.best_iteration_} trees, "
        f"median of {args.repeat} runs, 2 threads"
    )
    print(f"{'measure':<44}{'ours':>12}{'bare LightGBM':>16}{'ratio':>9}")
    print(
        f"{'fit seconds (features + early stopping)':<44}{ours:>12.2f}{bare_stopped:>16.2f}"
        f"{ours / bare_stopped:>9.2f}"
    )
    print(
        f"{'  against the kept trees only, no validation':<44}{ours:>12.2f}{bare:>16.2f}"
        f"{ours / bare:>9.2f}"
    )
    print(
        f"{'training job seconds (1 trial, 5-fold CV)':<44}{job:>12.2f}{bare:>16.2f}"
        f"{job / bare:>9.2f}"
    )
    print(
        f"{'predict rows/s (' + str(rows) + ' rows)':<44}{rows / score_s:>12,.0f}"
        f"{rows / bare_s:>16,.0f}{bare_s / score_s:>9.2f}"
    )


if __name__ == "__main__":
    main()
