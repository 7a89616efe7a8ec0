"""Benchmark: how cost grows: training and scoring at 10K, 100K and 1M rows, against bare LightGBM.

Two data sets, each at every ``--rows`` size:

  * adult resampled: rows drawn with replacement from adult-train.csv (read with the
    reader of conf/dataset/adult.yaml), written to Parquet and trained as ``dataset=adult``
    with its source pointed at that file and no test file (the test split is taken from it);
  * synthetic 50 columns: ``make_classification`` (50 features, 20 informative), of which
    10 informative ones are binned into categorical strings of 20 to 47 levels and 40 stay
    numeric, written to Parquet and trained through a data set YAML in a temporary folder.

Each measure runs in a child process of its own (this script with ``--child``), so its
peak RSS (``VmHWM``: the interpreter and libraries included) is that measure's alone:

  * train s ours: one training job, ``model=lgbm search.n_trials=1`` without plots,
    bootstrap intervals, permutation importance, tracking or registry: load, clean,
    validate and split the data, one trial (5-fold CV; one holdout split above
    ``search.holdout_above``, 100,000 training rows: at 1M rows), refit (early-stopped),
    evaluate on the test
    split, profile the training rows for monitoring, write the bundle; wall seconds of
    ``train`` (imports and composing the config not counted);
  * train s bare: ``lightgbm.LGBMClassifier`` with the trained booster's parameters and
    its best iteration as ``n_estimators``, fitted on the training rows already encoded by
    the fitted pipeline's feature steps (loading and encoding are done before timing, but
    count in the child's peak RSS);
  * score rows/s ours: ``Model.score`` (clean, contract, features, predict) on all the
    raw rows of the size, in process, the bundle loaded and the rows read before timing;
    its peak RSS is the score peak RSS column;
  * score rows/s bare: the trained booster's ``predict`` on those rows already encoded.

Prints one Markdown table (ratios: train ours / bare, score ours / bare) and the trees
each model kept; ``--plot`` writes a PNG (train seconds and score rows/s against rows,
log-log), ``--csv`` the table's figures. ``--n-jobs`` sets the threads of every fit and
predict (``n_jobs``, 2 by default as in the config); on CPUs another job is using,
LightGBM's OpenMP threads wait on each other and times grow tenfold: run it on an idle
machine, or with ``--n-jobs 1``. ``--budget-run`` also trains ``model=auto
search.time_budget=300`` (default evaluation, no tracking or registry) on 1M synthetic
rows and prints its wall time against the 300 s budget and its peak RSS (the main
process, and the process tree with its trial workers, sampled every 0.2 s) against an
8 GB target: about 6 minutes more (`--rows --budget-run`: that alone). Figures are
printed, never asserted.

Usage: python bench/scaling.py [--data-dir ../shared/data] [--rows 10000 100000 1000000]
       [--datasets adult synthetic] [--seed 0] [--n-jobs 2] [--plot scaling.png]
       [--csv scaling.csv] [--budget-run]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
ADULT = OmegaConf.load(ROOT / "conf" / "dataset" / "adult.yaml")
LABELS = {"adult": "adult resampled", "synthetic": "synthetic 50 columns"}
SYNTHETIC = "synthetic50"  # the generated data set's name (no shipped one has it)
N_CATEGORICAL = 10
N_FEATURES = 50
TRAIN = [
    "model=lgbm",
    "search.n_trials=1",
    "evaluation.plots=false",
    "evaluation.bootstrap=0",
    "evaluation.importance_rows=0",
    "tracking=none",
    "registry.enabled=false",
    "progress=false",
]
BUDGET_S = 300
BUDGET_ROWS = 1_000_000
TARGET_RSS_MB = 8192


# ---------------------------------------------------------------- data


def adult_rows(data_dir: Path) -> pd.DataFrame:
    """adult-train.csv, read as conf/dataset/adult.yaml reads it (no header, names, spaces)."""
    from automl.config import build

    reader = build(ADULT.source.reader)
    return reader(data_dir / ADULT.source.path)


def resample(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """``rows`` rows of ``frame`` drawn with replacement."""
    picks = np.random.default_rng(seed).integers(0, len(frame), rows)
    return frame.iloc[picks].reset_index(drop=True)


def synthetic(rows: int, seed: int) -> pd.DataFrame:
    """A binary problem of 50 columns: 10 categorical (binned informative features, 20 to
    47 labelled levels) and 40 numeric; the target ``label`` is "pos" or "neg"."""
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=rows,
        n_features=N_FEATURES,
        n_informative=20,
        n_redundant=10,
        flip_y=0.05,
        shuffle=False,  # the informative features come first
        random_state=seed,
    )
    columns: dict[str, Any] = {}
    for j in range(N_CATEGORICAL):
        levels = 20 + 3 * j
        edges = np.quantile(X[:, j], np.linspace(0, 1, levels + 1)[1:-1])
        names = np.array([f"c{j}_{k:02d}" for k in range(levels)], dtype=object)
        columns[f"cat_{j:02d}"] = names[np.searchsorted(edges, X[:, j])]
    for j in range(N_CATEGORICAL, N_FEATURES):
        columns[f"num_{j - N_CATEGORICAL:02d}"] = X[:, j]
    columns["label"] = np.where(y == 1, "pos", "neg")
    return pd.DataFrame(columns)


def synthetic_conf(conf_dir: Path) -> Path:
    """A data set config for the generated files (``dataset.source.path`` set per size)."""
    spec = {
        "name": SYNTHETIC,
        "description": "Generated binary classification, 40 numeric and 10 categorical "
        "columns (bench/scaling.py)",
        "target": "label",
        "task": "binary",
        "positive_class": "pos",
        "source": {
            "_target_": "automl.data.sources.FileSource",
            "path": "unset.parquet",
            "reader": {"_target_": "pandas.read_parquet", "_partial_": True},
        },
    }
    (conf_dir / "dataset").mkdir(parents=True, exist_ok=True)
    (conf_dir / "dataset" / f"{SYNTHETIC}.yaml").write_text(yaml.safe_dump(spec))
    return conf_dir


def dataset_overrides(name: str, data: Path, conf_dir: Path) -> list[str]:
    """The overrides that train on ``data``: adult with its source replaced by the Parquet
    file (and no test file), or the generated data set's YAML."""
    if name == "adult":
        return [
            "dataset=adult",
            f"dataset.source.path={data}",
            "dataset.source.url=null",
            "~dataset.source.reader",  # the CSV reader's options: replaced, not merged
            "+dataset.source.reader={_target_:pandas.read_parquet,_partial_:true}",
            "dataset.test_source=null",
        ]
    return [
        f"hydra.searchpath=[pkg://automl.conf.common,file://{conf_dir}]",
        f"dataset={SYNTHETIC}",
        f"dataset.source.path={data}",
    ]


def target_of(name: str) -> str:
    return str(ADULT.target) if name == "adult" else "label"


# ---------------------------------------------------------------- memory


def peak_mb() -> float:
    """This process's peak RSS (VmHWM) in MB (ru_maxrss where /proc is absent)."""
    status = Path("/proc/self/status")
    if status.is_file():
        return next(int(ln.split()[1]) for ln in status.open() if ln.startswith("VmHWM")) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def tree_rss_mb(root: int) -> float:
    """RSS of ``root`` and all its descendants now, in MB (0 where /proc is absent)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            fields = dict(
                ln.split(":", 1) for ln in (proc / "status").read_text().splitlines() if ":" in ln
            )
            parents[int(proc.name)] = int(fields["PPid"])
            rss[int(proc.name)] = int(fields.get("VmRSS", "0 kB").split()[0])
        except (OSError, KeyError, ValueError):
            continue
    tree, grown = {root}, True
    while grown:
        more = {pid for pid, ppid in parents.items() if ppid in tree} - tree
        tree |= more
        grown = bool(more)
    return sum(rss.get(pid, 0) for pid in tree) / 1024


class TreePeak(threading.Thread):
    """Samples the process tree's RSS every ``every`` seconds; ``peak`` is the largest."""

    def __init__(self, every: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.every = every
        self.peak = 0.0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.every):
            self.peak = max(self.peak, tree_rss_mb(os.getpid()))


# ---------------------------------------------------------------- child measures


def compose_train(overrides: list[str]):
    from hydra import compose, initialize_config_module

    from automl.config import register_schemas

    register_schemas()
    with initialize_config_module("automl.conf", version_base="1.3"):
        return compose("train", overrides=overrides)


def lgbm_of(estimator):
    """The fitted LightGBM estimator inside the pipeline's last step."""
    while not hasattr(estimator, "booster_"):
        estimator = estimator.estimator_
    return estimator


def raw_rows(spec: dict) -> pd.DataFrame:
    """The size's rows as a user would score them: the Parquet file without the target."""
    return pd.read_parquet(spec["data"]).drop(columns=spec["target"])


def train_ours(spec: dict) -> dict:
    from automl.bundle.model import Model
    from automl.services.training import train

    cfg = compose_train(spec["overrides"])
    started = time.perf_counter()
    train(cfg, Path(spec["run"]))
    seconds = time.perf_counter() - started
    fitted = lgbm_of(Model.load(spec["run"]).pipeline[-1])
    return {"seconds": seconds, "trees": fitted.best_iteration_ or fitted.n_estimators}


def train_bare(spec: dict) -> dict:
    import lightgbm

    from automl.bundle.model import Model
    from automl.data.dataset import load_dataset

    cfg = compose_train(spec["overrides"])
    data = load_dataset(cfg.dataset, cfg.evaluation, cfg.seed)
    X, y = data.xy(data.train)
    model = Model.load(spec["run"])
    encoded = model.pipeline[:-1].transform(X)
    fitted = lgbm_of(model.pipeline[-1])
    params = dict(fitted.get_params(), n_estimators=fitted.best_iteration_ or fitted.n_estimators)
    started = time.perf_counter()
    lightgbm.LGBMClassifier(**params).fit(encoded, y)
    return {"seconds": time.perf_counter() - started, "train_rows": len(y)}


def score_ours(spec: dict) -> dict:
    from automl.bundle.model import Model

    model = Model.load(spec["run"])
    frame = raw_rows(spec)
    started = time.perf_counter()
    scored = model.score(frame)
    seconds = time.perf_counter() - started
    assert len(scored) == len(frame), "rows were lost"
    return {"rows_per_s": len(frame) / seconds}


def score_bare(spec: dict) -> dict:
    from automl.bundle.model import Model

    model = Model.load(spec["run"])
    frame = raw_rows(spec)
    matrix = model.pipeline[:-1].transform(model.prepare(frame))
    fitted = lgbm_of(model.pipeline[-1])
    started = time.perf_counter()
    fitted.booster_.predict(matrix, num_iteration=fitted.best_iteration_ or None)
    return {"rows_per_s": len(frame) / (time.perf_counter() - started)}


def budget(spec: dict) -> dict:
    from automl.services.training import train

    cfg = compose_train(spec["overrides"])
    sampler = TreePeak()
    sampler.start()
    started = time.perf_counter()
    metrics = train(cfg, Path(spec["run"]))
    seconds = time.perf_counter() - started
    sampler.done.set()
    sampler.join()
    auc = metrics.get("auc")
    return {"seconds": seconds, "tree_peak_mb": max(sampler.peak, peak_mb()), "auc": auc}


MEASURES = {
    "train_ours": train_ours,
    "train_bare": train_bare,
    "score_ours": score_ours,
    "score_bare": score_bare,
    "budget": budget,
}


def child(spec_json: str) -> None:
    """Run one measure in this (child) process and print its figures as a JSON line."""
    spec = json.loads(spec_json)
    result = MEASURES[spec["measure"]](spec)
    print(json.dumps({**result, "peak_mb": peak_mb()}))


def in_child(measure: str, **spec: Any) -> dict:
    """One measure in a child process: its JSON line."""
    result = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps({"measure": measure, **spec})],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith("{")]
    if result.returncode != 0 or not lines:
        sys.exit(f"{measure} failed:\n{result.stderr[-3000:]}")
    return json.loads(lines[-1])


# ---------------------------------------------------------------- parent


def measure_size(name: str, frame: pd.DataFrame, work: Path, conf_dir: Path, n_jobs: int) -> dict:
    """The four measures of one data set at one size (``frame``: its rows, target included)."""
    rows = len(frame)
    data = work / f"{name}-{rows}.parquet"
    frame.to_parquet(data, index=False)
    spec = {
        "overrides": [*dataset_overrides(name, data, conf_dir), *TRAIN, f"n_jobs={n_jobs}"],
        "run": str(work / f"run-{name}-{rows}"),
        "data": str(data),
        "target": target_of(name),
    }
    ours = in_child("train_ours", **spec)
    bare = in_child("train_bare", **spec)
    scored = in_child("score_ours", **spec)
    scored_bare = in_child("score_bare", **spec)
    data.unlink()
    return {
        "dataset": LABELS[name],
        "rows": rows,
        "train_rows": bare["train_rows"],
        "trees": ours["trees"],
        "train_s_ours": ours["seconds"],
        "train_s_bare": bare["seconds"],
        "train_ratio": ours["seconds"] / bare["seconds"],
        "train_peak_mb_ours": ours["peak_mb"],
        "train_peak_mb_bare": bare["peak_mb"],
        "score_rows_per_s_ours": scored["rows_per_s"],
        "score_rows_per_s_bare": scored_bare["rows_per_s"],
        "score_ratio": scored["rows_per_s"] / scored_bare["rows_per_s"],
        "score_peak_mb_ours": scored["peak_mb"],
    }


def markdown(results: list[dict]) -> str:
    head = (
        "| data set | rows | train s ours | train s bare | ratio | train peak RSS ours (MB) "
        "| bare (MB) | score rows/s ours | bare | ratio | score peak RSS (MB) |"
    )
    lines = [head, "|---|" + "---:|" * 10]
    for r in results:
        lines.append(
            f"| {r['dataset']} | {r['rows']:,} | {r['train_s_ours']:.2f} | "
            f"{r['train_s_bare']:.2f} | {r['train_ratio']:.1f} | "
            f"{r['train_peak_mb_ours']:,.0f} | {r['train_peak_mb_bare']:,.0f} | "
            f"{r['score_rows_per_s_ours']:,.0f} | {r['score_rows_per_s_bare']:,.0f} | "
            f"{r['score_ratio']:.0%} | {r['score_peak_mb_ours']:,.0f} |"
        )
    return "\n".join(lines)


def plot(results: list[dict], path: Path) -> None:
    """Train seconds and score rows/s against rows, log-log, ours and bare per data set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = pd.DataFrame(results)
    fig, (train_ax, score_ax) = plt.subplots(1, 2, figsize=(12, 4.8))
    for i, (name, group) in enumerate(table.groupby("dataset", sort=False)):
        color = f"C{i}"
        for who, style in (("ours", "-o"), ("bare", "--s")):
            label = f"{name}, {who}"
            train_ax.plot(group["rows"], group[f"train_s_{who}"], style, color=color, label=label)
            score_ax.plot(
                group["rows"], group[f"score_rows_per_s_{who}"], style, color=color, label=label
            )
    train_ax.set(xscale="log", yscale="log", xlabel="rows", ylabel="train seconds")
    train_ax.set_title("training (one LightGBM job) against bare LightGBM")
    score_ax.set(xscale="log", yscale="log", xlabel="rows", ylabel="score rows/s")
    score_ax.set_title("scoring: Model.score against Booster.predict")
    for ax in (train_ax, score_ax):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def budget_run(work: Path, conf_dir: Path, seed: int, n_jobs: int) -> None:
    """``model=auto search.time_budget=300`` on 1M synthetic rows, in a child; printed."""
    data = work / f"{SYNTHETIC}-budget.parquet"
    synthetic(BUDGET_ROWS, seed).to_parquet(data, index=False)
    overrides = [
        *dataset_overrides("synthetic", data, conf_dir),
        "model=auto",
        f"search.time_budget={BUDGET_S}",
        "tracking=none",
        "registry.enabled=false",
        "progress=false",
        f"n_jobs={n_jobs}",
    ]
    result = in_child("budget", overrides=overrides, run=str(work / "run-budget"))
    in_time = result["seconds"] <= BUDGET_S
    in_memory = result["tree_peak_mb"] <= TARGET_RSS_MB
    print(
        f"\nbudget run: model=auto search.time_budget={BUDGET_S} on {BUDGET_ROWS:,} "
        f"{LABELS['synthetic']} rows (test AUC {result['auc']:.4f})"
    )
    print(f"  [{'met' if in_time else 'NOT met'}] wall {result['seconds']:.0f} s <= {BUDGET_S} s")
    print(
        f"  [{'met' if in_memory else 'NOT met'}] peak RSS {result['tree_peak_mb']:,.0f} MB "
        f"(process tree, sampled; main process {result['peak_mb']:,.0f} MB) "
        f"<= {TARGET_RSS_MB:,} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument(
        "--rows",
        type=int,
        nargs="*",
        default=[10_000, 100_000, 1_000_000],
        help="sizes to measure (none, with --budget-run: only the budget run)",
    )
    parser.add_argument("--datasets", nargs="+", choices=list(LABELS), default=list(LABELS))
    parser.add_argument("--seed", type=int, default=0, help="resampling and generation seed")
    parser.add_argument("--n-jobs", type=int, default=2, help="threads per fit and predict")
    parser.add_argument("--plot", type=Path, help="write the two-panel PNG here")
    parser.add_argument("--csv", type=Path, help="write the table's figures here")
    parser.add_argument("--budget-run", action="store_true", help="also model=auto, 300 s")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child)
    data_dir = Path(args.data_dir)
    if "adult" in args.datasets and not (data_dir / ADULT.source.path).is_file():
        sys.exit(f"{ADULT.source.path} not found in {data_dir} (pass --data-dir)")
    os.environ["AUTOML_DATA_DIR"] = str(data_dir)

    results = []
    with tempfile.TemporaryDirectory(prefix="scaling-") as tmp:
        work = Path(tmp)
        conf_dir = synthetic_conf(work / "conf")
        adult = adult_rows(data_dir) if "adult" in args.datasets else None
        for name in args.datasets:
            for rows in args.rows:
                started = time.perf_counter()
                frame = resample(adult, rows, args.seed) if name == "adult" else None
                if frame is None:
                    frame = synthetic(rows, args.seed)
                results.append(measure_size(name, frame, work, conf_dir, args.n_jobs))
                del frame
                print(
                    f"  {LABELS[name]}, {rows:,} rows: measured in "
                    f"{time.perf_counter() - started:.0f} s",
                    file=sys.stderr,
                )
        if not results:
            if args.budget_run:
                budget_run(work, conf_dir, args.seed, args.n_jobs)
            return
        print(
            f"\nhow cost grows: one model=lgbm trial per size, n_jobs={args.n_jobs}, "
            f"{os.cpu_count()} CPUs, "
            "each measure in its own process (peak RSS = VmHWM of that process)\n"
        )
        print(markdown(results))
        trees = ", ".join(f"{r['dataset']} {r['rows']:,}: {r['trees']}" for r in results)
        print(f"\ntrees kept (best iteration, the bare fit's n_estimators): {trees}")
        if args.csv:
            pd.DataFrame(results).to_csv(args.csv, index=False)
            print(f"figures written to {args.csv}")
        if args.plot:
            plot(results, args.plot)
            print(f"plot written to {args.plot}")
        if args.budget_run:
            budget_run(work, conf_dir, args.seed, args.n_jobs)


if __name__ == "__main__":
    main()
