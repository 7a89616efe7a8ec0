"""Feature ablation: each feature set and each step across all features against
``features=default``, with lgbm and linear, on the shipped data sets, the same splits and
seeds; the test metric and the fit time of every cell, and the difference to default.

One trial per run (the family's default parameters), so the features are what changes.
Figures are printed as a Markdown table (and written to ``--out`` as CSV), never asserted.

    .venv/bin/python bench/features_ablation.py [--seeds 3] [--datasets adult abalone ...]
        [override ...]   # e.g. evaluation.bootstrap=0 evaluation.importance_rows=0
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("AUTOML_DATA_DIR", str(ROOT.parent / "shared" / "data"))  # the files
sys.path.insert(0, str(ROOT / "tests"))
from helpers import compose_train  # noqa: E402

from automl.errors import AutomlError  # noqa: E402
from automl.services.training import train  # noqa: E402

DATASETS = ["adult", "abalone", "winequality_red", "horse_colic", "digits", "breast_cancer"]
MODELS = ["lgbm", "linear"]
METRIC = {"binary": "auc", "multiclass": "accuracy", "regression": "rmse"}
HIGHER_IS_BETTER = {"auc": True, "accuracy": True, "rmse": False}
RUN = ["search.n_trials=1", "evaluation.plots=false", "tracking=none", "registry.enabled=false"]


def choices() -> list[str]:
    """Every feature set, then every across option, as an override."""
    conf = ROOT / "conf" / "features"
    sets = [f"features={p.stem}" for p in sorted(conf.glob("*.yaml"))]
    across = [
        f"features/{kind}={p.stem}"
        for kind in ("interactions", "selection", "decomposition")
        for p in sorted((conf / kind).glob("*.yaml"))
        if p.stem != "none"
    ]
    return sets + across


def cell(
    dataset: str, model: str, choice: str, seed: int, out: Path, extra: list[str] = ()
) -> dict:
    """One training: the test metric and the seconds it took (or why it could not run)."""
    cfg = compose_train(
        [f"dataset={dataset}", f"model={model}", choice, f"seed={seed}", *RUN,
         f"paths.output_dir={out}", *extra]
    )  # fmt: skip
    started = time.perf_counter()
    try:
        metrics = train(cfg, out / f"{dataset}-{model}-{choice.replace('/', '_')}-{seed}")
    except (AutomlError, ValueError) as exc:
        return {"error": str(exc).splitlines()[0][:80]}
    task = cfg.dataset.task
    name = METRIC.get(task, "auc")
    return {"task": task, "metric": name, "value": metrics.get(name),
            "seconds": time.perf_counter() - started}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--datasets", nargs="*", default=DATASETS)
    parser.add_argument("--models", nargs="*", default=MODELS)
    parser.add_argument("--out", type=Path, default=None, help="a CSV of every cell")
    parser.add_argument("overrides", nargs="*", help="config overrides for every cell")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="automl-ablation-") as tmp:
        for dataset in args.datasets:
            for model in args.models:
                for choice in choices():
                    if choice == "features=none" and model == "linear":
                        continue  # native categoricals are for the boosters
                    for seed in range(args.seeds):
                        found = cell(dataset, model, choice, seed, Path(tmp), args.overrides)
                        rows.append({"dataset": dataset, "model": model, "choice": choice,
                                     "seed": seed, **found})  # fmt: skip
                        print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    if args.out:
        table.to_csv(args.out, index=False)
    done = table.dropna(subset=["value"])
    mean = done.groupby(["dataset", "model", "choice"]).agg(
        metric=("metric", "first"), value=("value", "mean"), seconds=("seconds", "mean")
    )
    base = mean.xs("features=default", level="choice")
    mean = mean.join(base[["value", "seconds"]], rsuffix="_default")
    sign = mean["metric"].map(lambda m: 1 if HIGHER_IS_BETTER[m] else -1)
    mean["gain"] = sign * (mean["value"] - mean["value_default"])
    mean["time_ratio"] = mean["seconds"] / mean["seconds_default"]
    print(f"\n{args.seeds} seed(s); gain: better than features=default by this much "
          "(metric direction applied); time: fit time / default's\n")  # fmt: skip
    print("| data set | model | choice | metric | mean | gain vs default | time x |")
    print("|---|---|---|---|---|---|---|")
    for (dataset, model, choice), r in mean.iterrows():
        print(f"| {dataset} | {model} | `{choice}` | {r['metric']} | {r['value']:.4f} | "
              f"{r['gain']:+.4f} | {r['time_ratio']:.2f} |")  # fmt: skip
    failed = table[table["value"].isna()] if "value" in table else table
    for _, r in failed.iterrows():
        print(f"not run: {r['dataset']} {r['model']} {r['choice']}: {r.get('error')}")


if __name__ == "__main__":
    main()
