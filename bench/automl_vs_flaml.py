"""model=auto against FLAML and default LightGBM: same data, splits, budget and cores.

For each data set, budget and seed, three systems train on the same training rows and
are scored on the same test rows (adult: its official test file; the others: the
stratified holdout of `conf/evaluation/default.yaml`, drawn with the seed):

- ours: `python -m automl model=auto search.time_budget=B` (in-process `train`);
- FLAML: `flaml.AutoML().fit(..., time_budget=B, n_jobs=2)` with the same metric;
- LightGBM with default parameters (`n_jobs=2`).

Test metric: AUC (binary, higher is better), log loss (multiclass), RMSE (regression);
lower is better for the last two. Per budget it prints a table, the mean rank of each
system (1 = best; averaged over data sets, each averaged over seeds) and the wall time.
Noise: for ours vs default LightGBM, a paired bootstrap of the test rows (1,000
resamples) gives a 95 % interval of the metric difference, signed so that > 0 means
ours is better; "worse beyond noise" means the whole interval is below zero.

    python bench/automl_vs_flaml.py [--budgets 30 120] [--seeds 0] [--datasets adult wine]

Needs `pip install -e ".[bench]"` (FLAML) and ../shared/data (or the download cache).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import lightgbm
import numpy as np
import pandas as pd
from hydra import compose, initialize_config_module
from sklearn.metrics import log_loss, roc_auc_score, root_mean_squared_error

from automl.bundle.model import Model
from automl.config import register_schemas
from automl.data.dataset import load_dataset
from automl.services.training import train

ROOT = Path(__file__).resolve().parents[1]
DATASETS = [
    "adult",
    "breast_cancer",
    "wine",
    "digits",
    "diabetes",
    "abalone",
    "winequality_red",
    "horse_colic",
]
METRIC = {"binary": "auc", "multiclass": "log_loss", "regression": "rmse"}
FLAML_METRIC = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}
HIGHER_IS_BETTER = {"auc": True, "log_loss": False, "rmse": False}
CORES = 2


def compose_run(dataset: str, budget: float, seed: int) -> object:
    register_schemas()
    with initialize_config_module("automl.conf", version_base="1.3"):
        return compose(
            "train",
            overrides=[
                f"dataset={dataset}",
                "model=auto",
                f"search.time_budget={budget}",
                f"seed={seed}",
                f"n_jobs={CORES}",
                "tracking=none",
                "registry.enabled=false",
                "evaluation.plots=false",
            ],
        )


def test_metric(task: str, y: np.ndarray, predicted: np.ndarray) -> float:
    if task == "binary":
        return float(roc_auc_score(y, predicted[:, 1]))
    if task == "multiclass":
        return float(log_loss(y, predicted, labels=np.arange(predicted.shape[1])))
    return float(root_mean_squared_error(y, predicted))


def as_categories(frame: pd.DataFrame) -> pd.DataFrame:
    """String columns as pandas categories (what FLAML and LightGBM take natively)."""
    out = frame.copy()
    for column in out.columns:
        if not pd.api.types.is_numeric_dtype(out[column]):
            out[column] = out[column].astype("category")
    return out


def run_ours(cfg, data, run_dir: Path) -> np.ndarray:
    train(cfg, run_dir)
    model = Model.load(run_dir / "model")
    X_test = data.test[data.features]
    if data.classes is None:
        return model.pipeline.predict(model.prepare(X_test))
    return model.pipeline.predict_proba(model.prepare(X_test))


def run_flaml(data, budget: float, seed: int, X, y, X_test) -> np.ndarray:
    from flaml import AutoML

    automl = AutoML()
    automl.fit(
        X,
        y,
        task="regression" if data.classes is None else "classification",
        metric=FLAML_METRIC[data.task],
        time_budget=budget,
        n_jobs=CORES,
        seed=seed,
        verbose=0,
    )
    return automl.predict(X_test) if data.classes is None else automl.predict_proba(X_test)


def run_lightgbm(data, seed: int, X, y, X_test) -> np.ndarray:
    kind = lightgbm.LGBMRegressor if data.classes is None else lightgbm.LGBMClassifier
    model = kind(n_jobs=CORES, random_state=seed, verbose=-1).fit(X, y)
    return model.predict(X_test) if data.classes is None else model.predict_proba(X_test)


def bootstrap_interval(task, y, ours, other, resamples=1000, seed=0) -> tuple[float, float]:
    """95 % interval of metric(ours) - metric(other) over bootstrap resamples of the rows."""
    rng = np.random.default_rng(seed)
    differences = []
    for _ in range(resamples):
        rows = rng.integers(0, len(y), len(y))
        if task != "regression" and len(np.unique(y[rows])) < 2:
            continue
        differences.append(
            test_metric(task, y[rows], ours[rows]) - test_metric(task, y[rows], other[rows])
        )
    low, high = np.quantile(differences, [0.025, 0.975])
    return float(low), float(high)


def run_one(dataset: str, budget: float, seed: int, workdir: Path) -> dict:
    cfg = compose_run(dataset, budget, seed)
    data = load_dataset(cfg.dataset, cfg.evaluation, cfg.seed)
    X, y = data.xy(data.train)
    X_test, y_test = data.xy(data.test)
    X_cat, X_test_cat = as_categories(X), as_categories(X_test)
    row = {"dataset": dataset, "task": data.task, "budget": budget, "seed": seed}
    predictions = {}
    for system, fit in (
        ("ours", lambda: run_ours(cfg, data, workdir / f"{dataset}-{budget}-{seed}")),
        ("flaml", lambda: run_flaml(data, budget, seed, X_cat, y, X_test_cat)),
        ("lightgbm", lambda: run_lightgbm(data, seed, X_cat, y, X_test_cat)),
    ):
        started = time.perf_counter()
        predictions[system] = fit()
        row[f"{system}_seconds"] = round(time.perf_counter() - started, 1)
        row[system] = test_metric(data.task, y_test, predictions[system])
    sign = 1 if HIGHER_IS_BETTER[METRIC[data.task]] else -1
    low, high = bootstrap_interval(data.task, y_test, predictions["ours"], predictions["lightgbm"])
    better = sorted((sign * low, sign * high))  # > 0: ours is better
    row["ours_vs_lightgbm_ci"] = (round(better[0], 5), round(better[1], 5))
    row["worse_than_lightgbm"] = bool(better[1] < 0)
    print(json.dumps(row), flush=True)
    return row


def summarise(rows: pd.DataFrame) -> str:
    """A Markdown table per budget with mean ranks and wall times."""
    systems = ["ours", "flaml", "lightgbm"]
    lines = []
    for budget, part in rows.groupby("budget"):
        mean = part.groupby(["dataset", "task"], sort=False)[systems].mean().reset_index()
        seconds = part[[f"{s}_seconds" for s in systems]].mean()
        ranks = []
        for _, r in mean.iterrows():
            higher = HIGHER_IS_BETTER[METRIC[r["task"]]]
            ranks.append(pd.Series(r[systems].astype(float)).rank(ascending=not higher))
        mean_rank = pd.DataFrame(ranks).mean()
        lines += [
            f"\n### budget {budget:g} s ({part['seed'].nunique()} seed(s), {CORES} cores)\n",
            "| data set | metric | ours (model=auto) | FLAML | LightGBM default "
            "| ours vs LightGBM, 95 % CI (> 0: ours better) | worse beyond noise |",
            "|---|---|---|---|---|---|---|",
        ]
        for _, r in mean.iterrows():
            ci = part[part["dataset"] == r["dataset"]]["ours_vs_lightgbm_ci"].iloc[0]
            worse = part[part["dataset"] == r["dataset"]]["worse_than_lightgbm"].any()
            metric = METRIC[r["task"]]
            lines.append(
                f"| {r['dataset']} | {metric} | {r['ours']:.4f} | {r['flaml']:.4f} "
                f"| {r['lightgbm']:.4f} | [{ci[0]:+.4f}, {ci[1]:+.4f}] "
                f"| {'yes' if worse else 'no'} |"
            )
        lines.append(
            f"| **mean rank** | | **{mean_rank['ours']:.2f}** | {mean_rank['flaml']:.2f} "
            f"| {mean_rank['lightgbm']:.2f} | | |"
        )
        lines.append(
            f"| mean wall seconds | | {seconds['ours_seconds']:.1f} | "
            f"{seconds['flaml_seconds']:.1f} | {seconds['lightgbm_seconds']:.1f} | | |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[30, 120])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--datasets", nargs="+", default=DATASETS)
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as CSV")
    args = parser.parse_args()
    os.environ.setdefault("AUTOML_DATA_DIR", str(ROOT.parent / "shared" / "data"))
    workdir = Path(tempfile.mkdtemp(prefix="automl-bench-"))
    os.environ["AUTOML_OUTPUT_DIR"] = str(workdir)
    rows = [
        run_one(dataset, budget, seed, workdir)
        for budget in args.budgets
        for dataset in args.datasets
        for seed in args.seeds
    ]
    table = pd.DataFrame(rows)
    if args.out:
        table.to_csv(args.out, index=False)
    print(summarise(table))


if __name__ == "__main__":
    main()
