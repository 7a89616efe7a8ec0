"""model=auto against FLAML, AutoGluon and default LightGBM: same data, splits, budget, cores.

For each data set, budget and seed, every system trains on the same training rows and
is scored on the same test rows (adult: its official test file; the other shipped data
sets: the stratified holdout of `conf/evaluation/default.yaml`, drawn with the seed; the
awkward cases of bench/awkward.py: their own split, drawn with the seed):

- ours: `python -m automl model=auto search.time_budget=B` (in-process `train`);
- FLAML: `flaml.AutoML().fit(..., time_budget=B, n_jobs=2)` with the same metric;
- AutoGluon: `TabularPredictor(...).fit(train, time_limit=B, presets='medium_quality',
  num_cpus=2)` in a process of its own (bench/autogluon_runner.py in .venv-autogluon;
  no torch there, so it skips its neural models; its models keep their default seed);
- LightGBM with default parameters (`n_jobs=2`).

Data sets: the 8 shipped ones below and the awkward cases of bench/awkward.py (rare
classes, tiny, wide, imbalanced, many classes, heavy-tailed regression target).
Test metric: AUC (binary, higher is better), log loss (multiclass), RMSE (regression);
lower is better for the last two. Wall seconds include AutoGluon's process start (its
own fit seconds are recorded too). A system that fails is recorded with its error and
the benchmark goes on. Per budget the summary gives each system's mean metric per data
set, its mean rank (1 = best; ranked per data set and seed, a failed run last, averaged
over seeds, then over data sets), ours' wins/losses/ties against each other system over
data sets x seeds (a failed run loses), and for ours vs default LightGBM a paired
bootstrap of the test rows (1,000 resamples): a 95 % interval of the metric difference,
signed so that > 0 means ours is better ("worse beyond noise": the whole interval < 0).

    make bench-autogluon-env   # once: .venv-autogluon with autogluon.tabular (~2 min)
    python bench/automl_vs_flaml.py --out outputs/bench-automl.jsonl --resume
    python bench/automl_vs_flaml.py --budgets 10 --seeds 0 --datasets tiny_adult wine
    python bench/automl_vs_flaml.py --summarise outputs/bench-automl.jsonl

Defaults: all data sets, budgets 30 120, seeds 0 1 2, all systems (several hours on 2
cores). `--out` appends one JSON line per (data set, budget, seed) as soon as it is
done; `--resume` skips those already in the file, so a stopped run picks up where it
was. Needs `pip install -e ".[bench]"` (FLAML) and ../shared/data (adult, abalone, wine
quality, horse colic and the awkward cases built from them; a case whose file is missing
is skipped with the reason). Without .venv-autogluon, AutoGluon is skipped with the reason.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import pandas as pd
from sklearn.metrics import log_loss, roc_auc_score, root_mean_squared_error

sys.path.insert(0, str(Path(__file__).resolve().parent))
import awkward  # noqa: E402  (bench/awkward.py, beside this file)

from automl.bundle.model import Model  # noqa: E402
from automl.config import COMMON, compose_config  # noqa: E402
from automl.data.dataset import Dataset, load_dataset  # noqa: E402
from automl.services.training import train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BENCH_DATA = ROOT / "outputs" / "bench-data"  # the awkward cases' files and data set YAMLs
AUTOGLUON_PYTHON = ROOT / ".venv-autogluon" / "bin" / "python"
SHIPPED = [
    "adult",
    "breast_cancer",
    "wine",
    "digits",
    "diabetes",
    "abalone",
    "winequality_red",
    "horse_colic",
]
DATASETS = SHIPPED + list(awkward.CASES)
SYSTEMS = ["ours", "flaml", "autogluon", "lightgbm"]
LABELS = {"ours": "ours (model=auto)", "flaml": "FLAML", "autogluon": "AutoGluon"}
LABELS["lightgbm"] = "LightGBM default"
METRIC = {"binary": "auc", "multiclass": "log_loss", "regression": "rmse"}
FLAML_METRIC = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}
AUTOGLUON_METRIC = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}
HIGHER_IS_BETTER = {"auc": True, "log_loss": False, "rmse": False}
CORES = 2
KEY = ("dataset", "budget", "seed")  # one result line each


def compose_run(dataset: str, budget: float, seed: int) -> Any:
    """The training config of ours; the awkward cases' YAMLs are on the search path."""
    conf = BENCH_DATA / "conf"
    search_path = [f"hydra.searchpath=[pkg://{COMMON},file://{conf}]"] if conf.is_dir() else []
    return compose_config(
        "automl.conf",
        "train",
        [
            *search_path,
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


def run_ours(cfg: Any, data: Dataset, run_dir: Path) -> np.ndarray:
    try:
        train(cfg, run_dir)
        model = Model.load(run_dir / "model")
        X_test = model.prepare(data.test[data.features])
        if data.classes is None:
            return model.pipeline.predict(X_test)
        return model.pipeline.predict_proba(X_test)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def run_flaml(data: Dataset, budget: float, seed: int, X, y, X_test) -> np.ndarray:
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


def run_autogluon(data: Dataset, budget: float, seed: int, X, y, X_test, info: dict) -> np.ndarray:
    """bench/autogluon_runner.py in .venv-autogluon on Parquet copies of the rows; the
    label is the class index, so its probability columns map straight onto ours."""
    with tempfile.TemporaryDirectory(prefix="bench-autogluon-") as folder:
        folder = Path(folder)
        X.assign(**{data.target: y}).to_parquet(folder / "train.parquet")
        X_test.to_parquet(folder / "test.parquet")
        command = [
            str(AUTOGLUON_PYTHON), str(ROOT / "bench" / "autogluon_runner.py"),
            "--train", str(folder / "train.parquet"), "--test", str(folder / "test.parquet"),
            "--label", data.target, "--problem-type", data.task,
            "--eval-metric", AUTOGLUON_METRIC[data.task], "--time-limit", str(budget),
            "--seed", str(seed), "--num-cpus", str(CORES), "--out-dir", str(folder / "out"),
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=3 * budget + 300)
        if done.returncode != 0:
            raise RuntimeError(f"autogluon_runner exited {done.returncode}: {done.stderr[-2000:]}")
        info.update(json.loads((folder / "out" / "info.json").read_text()))
        predicted = np.load(folder / "out" / "predictions.npy")
    if data.classes is None:
        return predicted
    proba = np.zeros((len(X_test), len(data.classes)))
    proba[:, info["labels"]] = predicted  # a class AutoGluon dropped keeps probability 0
    return proba


def run_lightgbm(data: Dataset, seed: int, X, y, X_test) -> np.ndarray:
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


def error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).strip()[-1500:]}"


def run_one(dataset: str, budget: float, seed: int, systems: list[str], workdir: Path) -> dict:
    """Every system on one (data set, budget, seed); a failure is recorded, not raised."""
    cfg = compose_run(dataset, budget, seed)
    data = load_dataset(cfg.dataset, cfg.evaluation, cfg.seed)
    X, y = data.xy(data.train)
    X_test, y_test = data.xy(data.test)
    X_cat, X_test_cat = as_categories(X), as_categories(X_test)
    row: dict[str, Any] = {"dataset": dataset, "task": data.task, "metric": METRIC[data.task]}
    row |= {"budget": budget, "seed": seed, "train_rows": len(X), "test_rows": len(X_test)}
    row |= {"features": X.shape[1], "classes": len(data.classes or [])}
    info: dict[str, Any] = {}
    fits: dict[str, Callable[[], np.ndarray]] = {
        "ours": lambda: run_ours(cfg, data, workdir / f"{dataset}-{budget:g}-{seed}"),
        "flaml": lambda: run_flaml(data, budget, seed, X_cat, y, X_test_cat),
        "autogluon": lambda: run_autogluon(data, budget, seed, X_cat, y, X_test_cat, info),
        "lightgbm": lambda: run_lightgbm(data, seed, X_cat, y, X_test_cat),
    }
    predictions = {}
    for system in systems:
        started = time.perf_counter()
        try:
            predicted = np.asarray(fits[system](), dtype=float)
            value = test_metric(data.task, y_test, predicted)
            if not math.isfinite(value):
                raise ValueError(f"test {row['metric']} is {value}")
            row[system], predictions[system] = value, predicted
        except Exception as exc:  # noqa: BLE001  (a failed run is a result, not a crash)
            row[system], row[f"{system}_error"] = None, error_text(exc)
            print(f"  {system} failed on {dataset} (seed {seed}): {row[f'{system}_error']}")
        row[f"{system}_seconds"] = round(time.perf_counter() - started, 1)
    if "fit_seconds" in info:
        row |= {"autogluon_fit_seconds": info["fit_seconds"], "autogluon_model": info["best_model"]}
        row["autogluon_version"] = info["autogluon"]
    if "ours" in predictions and "lightgbm" in predictions:
        sign = 1 if HIGHER_IS_BETTER[row["metric"]] else -1
        low, high = bootstrap_interval(
            data.task, y_test, predictions["ours"], predictions["lightgbm"]
        )
        better = sorted((sign * low, sign * high))  # > 0: ours is better
        row["ours_vs_lightgbm_ci"] = [round(better[0], 5), round(better[1], 5)]
        row["worse_than_lightgbm"] = bool(better[1] < 0)
    return row


# ---- the summary -------------------------------------------------------------------------


def load_results(path: Path) -> pd.DataFrame:
    """The result lines of ``path``; of lines with the same key, the last one counts."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    frame = pd.DataFrame(rows)
    return frame.drop_duplicates(list(KEY), keep="last") if len(frame) else frame


def ranks(part: pd.DataFrame, systems: list[str]) -> pd.DataFrame:
    """Each row's rank of each system (1 = best; a failed run ranks below every result;
    a system not run on that row: NaN)."""
    out = []
    for _, r in part.iterrows():
        sign = 1 if HIGHER_IS_BETTER[r["metric"]] else -1
        scores = {}
        for s in systems:
            if pd.notna(r.get(s)):
                scores[s] = sign * float(r[s])
            elif pd.notna(r.get(f"{s}_error")):
                scores[s] = -math.inf
        out.append(pd.Series(scores, dtype=float).rank(ascending=False))
    return pd.DataFrame(out, index=part.index, columns=systems)


def versus(part: pd.DataFrame, other: str) -> tuple[int, int, int]:
    """Ours' wins, losses and ties against ``other`` over the rows both were run on."""
    outcomes = {1: 0, -1: 0, 0: 0}  # win, loss, tie
    for _, r in part.iterrows():
        ran = [pd.notna(r.get(s)) or pd.notna(r.get(f"{s}_error")) for s in ("ours", other)]
        if not all(ran):
            continue
        sign = 1 if HIGHER_IS_BETTER[r["metric"]] else -1
        ours = sign * r["ours"] if pd.notna(r["ours"]) else -math.inf
        theirs = sign * r[other] if pd.notna(r[other]) else -math.inf
        outcomes[(ours > theirs) - (ours < theirs)] += 1
    return outcomes[1], outcomes[-1], outcomes[0]


def cell(values: pd.Series, errors: pd.Series | None) -> str:
    """The mean of the results, and how many runs failed."""
    failed = int(errors.notna().sum()) if errors is not None else 0
    text = f"{values.dropna().mean():.4f}" if values.notna().any() else "-"
    return text + (f" ({failed} failed)" if failed else "")


def number(value: float, bold: bool = False, digits: int = 2) -> str:
    """``value`` for a table cell; "-" where a system was not run."""
    if pd.isna(value):
        return "-"
    return f"**{value:.{digits}f}**" if bold else f"{value:.{digits}f}"


def summarise(rows: pd.DataFrame) -> str:
    """Markdown per budget: metrics per data set, mean ranks, wins/losses, failures."""
    rows = rows.copy()
    systems = [s for s in SYSTEMS if s in rows.columns or f"{s}_error" in rows.columns]
    for s in systems:
        for column in (s, f"{s}_error", f"{s}_seconds"):
            if column not in rows.columns:
                rows[column] = None
    if "ours_vs_lightgbm_ci" not in rows.columns:
        rows["ours_vs_lightgbm_ci"] = None
    lines = []
    for budget, part in rows.groupby("budget"):
        rank = ranks(part, systems)
        per_dataset = rank.groupby(part["dataset"], sort=False).mean()
        head = " | ".join(LABELS[s] for s in systems)
        lines += [
            f"\n### budget {budget:g} s ({part['seed'].nunique()} seed(s), "
            f"{part['dataset'].nunique()} data sets, {CORES} cores)\n",
            f"| data set | metric | {head} | ours vs LightGBM, 95 % CI (> 0: ours better) |",
            "|---|---|" + "---|" * len(systems) + "---|",
        ]
        for dataset, runs in part.groupby("dataset", sort=False):
            values = " | ".join(cell(runs[s], runs[f"{s}_error"]) for s in systems)
            cis = [ci for ci in runs["ours_vs_lightgbm_ci"] if isinstance(ci, list)]
            ci_text = ", ".join(f"[{lo:+.4f}, {hi:+.4f}]" for lo, hi in cis)
            if any(hi < 0 for _, hi in cis):
                ci_text += " worse beyond noise"
            lines.append(f"| {dataset} | {runs['metric'].iloc[0]} | {values} | {ci_text} |")
        mean_rank = per_dataset.mean()
        lines.append(
            "| **mean rank** | | "
            + " | ".join(number(mean_rank[s], bold=True) for s in systems)
            + " | |"
        )
        seconds = [number(pd.to_numeric(part[f"{s}_seconds"]).mean(), digits=1) for s in systems]
        if "autogluon" in systems and "autogluon_fit_seconds" in part.columns:
            fit = pd.to_numeric(part["autogluon_fit_seconds"]).mean()
            if pd.notna(fit):
                seconds[systems.index("autogluon")] += f" (fit {fit:.1f})"
        lines.append("| mean wall seconds | | " + " | ".join(seconds) + " | |")
        others = systems[1:] if systems[:1] == ["ours"] else []
        lines += ["", "| ours vs | wins | losses | ties |", "|---|---|---|---|"] if others else []
        for other in others:
            wins, losses, ties = versus(part, other)
            lines.append(f"| {LABELS[other]} | {wins} | {losses} | {ties} |")
        failed = [
            f"- {r['dataset']} seed {r['seed']}, {s}: {str(r[f'{s}_error'])[:200]}"
            for _, r in part.iterrows()
            for s in systems
            if pd.notna(r[f"{s}_error"])
        ]
        if failed:
            lines += ["", f"Failed runs ({len(failed)}):", *failed]
    return "\n".join(lines)


# ---- running -----------------------------------------------------------------------------


def available_systems(wanted: list[str]) -> list[str]:
    """The wanted systems that can run here; each one skipped says why."""
    systems = []
    for system in wanted:
        if system == "flaml" and importlib.util.find_spec("flaml") is None:
            print('FLAML skipped: not installed (pip install -e ".[bench]")')
        elif system == "autogluon" and not AUTOGLUON_PYTHON.exists():
            print(
                f"AutoGluon skipped: {AUTOGLUON_PYTHON} is missing "
                "(`make bench-autogluon-env` creates .venv-autogluon)"
            )
        else:
            systems.append(system)
    return systems


def prepare(dataset: str, seed: int, data_dir: Path) -> str | None:
    """Build an awkward case's split for ``seed``; the reason when it cannot be built."""
    if dataset not in awkward.CASES:
        return None
    try:
        awkward.prepare(dataset, seed, data_dir, BENCH_DATA)
    except awkward.Unavailable as exc:
        return str(exc)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[30, 120])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--datasets", nargs="+", default=DATASETS)
    parser.add_argument("--systems", nargs="+", default=SYSTEMS, choices=SYSTEMS)
    parser.add_argument("--out", type=Path, help="append one JSON line per result here")
    parser.add_argument("--resume", action="store_true", help="skip results already in --out")
    parser.add_argument("--summarise", type=Path, help="print the summary of a results file")
    args = parser.parse_args()
    if args.summarise:
        print(summarise(load_results(args.summarise)))
        return
    os.environ.setdefault("AUTOML_DATA_DIR", str(ROOT.parent / "shared" / "data"))
    data_dir = Path(os.environ["AUTOML_DATA_DIR"])
    workdir = Path(tempfile.mkdtemp(prefix="automl-bench-"))
    os.environ["AUTOML_OUTPUT_DIR"] = str(workdir)
    systems = available_systems(args.systems)
    done = set()
    if args.resume and args.out and args.out.exists():
        done = {tuple(r) for r in load_results(args.out)[list(KEY)].itertuples(index=False)}
    rows, skipped = [], set()
    for budget in args.budgets:
        for dataset in args.datasets:
            for seed in args.seeds:
                if (dataset, budget, seed) in done or dataset in skipped:
                    continue
                reason = prepare(dataset, seed, data_dir)
                if reason:
                    print(f"{dataset} skipped: {reason}")
                    skipped.add(dataset)
                    continue
                try:
                    row = run_one(dataset, budget, seed, systems, workdir)
                except Exception as exc:  # noqa: BLE001  (the data set, not a system, failed)
                    print(f"{dataset} skipped: cannot load it: {error_text(exc)}")
                    skipped.add(dataset)
                    continue
                print(json.dumps(row), flush=True)
                rows.append(row)
                if args.out:
                    args.out.parent.mkdir(parents=True, exist_ok=True)
                    with args.out.open("a") as out:
                        out.write(json.dumps(row) + "\n")
    shutil.rmtree(workdir, ignore_errors=True)
    table = load_results(args.out) if args.out and args.out.exists() else pd.DataFrame(rows)
    if len(table):
        print(summarise(table))


if __name__ == "__main__":
    main()
