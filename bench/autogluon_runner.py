"""AutoGluon's side of bench/automl_vs_flaml.py: runs inside .venv-autogluon
(`make bench-autogluon-env`), never in the project's venv (AutoGluon pins its own pandas).

Reads a train and a test table (Parquet or CSV; the test's label column is ignored), fits
``TabularPredictor(...).fit(train, time_limit=..., presets=..., num_cpus=...)`` and writes
to ``--out-dir``: ``predictions.npy`` (class probabilities, one column per label of
``labels`` in info.json, or the predicted values for regression) and ``info.json``
(labels, fit seconds, AutoGluon's version, best model).

    .venv-autogluon/bin/python bench/autogluon_runner.py --train train.parquet \\
        --test test.parquet --label income --problem-type binary --eval-metric roc_auc \\
        --time-limit 30 --out-dir out/

AutoGluon's models keep their own default seed (0): ``--seed`` seeds NumPy and Python only.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def read(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--label", required=True)
    parser.add_argument("--problem-type", choices=["binary", "multiclass", "regression"])
    parser.add_argument("--eval-metric", required=True, help="e.g. roc_auc, log_loss, rmse")
    parser.add_argument("--time-limit", type=float, required=True, help="seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--presets", default="medium_quality")
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--out-dir", type=Path, required=True)
    args = parser.parse_args()

    import autogluon.tabular
    from autogluon.tabular import TabularPredictor

    random.seed(args.seed)
    np.random.seed(args.seed)
    train, test = read(args.train), read(args.test)
    test = test.drop(columns=[args.label], errors="ignore")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="autogluon-") as models:
        predictor = TabularPredictor(
            label=args.label,
            problem_type=args.problem_type,
            eval_metric=args.eval_metric,
            path=models,
            verbosity=0,
        )
        started = time.perf_counter()
        predictor.fit(
            train, time_limit=args.time_limit, presets=args.presets, num_cpus=args.num_cpus
        )
        fit_seconds = time.perf_counter() - started
        if args.problem_type == "regression":
            labels, predictions = None, predictor.predict(test).to_numpy(dtype=float)
        else:
            proba = predictor.predict_proba(test, as_multiclass=True)
            labels, predictions = proba.columns.tolist(), proba.to_numpy(dtype=float)
        info = {
            "labels": labels,
            "fit_seconds": round(fit_seconds, 2),
            "autogluon": autogluon.tabular.__version__,
            "python": sys.version.split()[0],
            "best_model": predictor.model_best,
            "models": len(predictor.model_names()),
        }
    np.save(args.out_dir / "predictions.npy", predictions)
    (args.out_dir / "info.json").write_text(json.dumps(info, default=str))


if __name__ == "__main__":
    main()
