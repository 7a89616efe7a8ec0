"""Awkward data sets for bench/automl_vs_flaml.py: rare classes, tiny, wide, imbalanced,
many classes and a heavy-tailed regression target.

Each case is built deterministically (real data from ../shared/data, or generated with a
fixed seed) and split with the run's seed into a train and a test Parquet file under
``outputs/bench-data/<case>/seed<k>/``. Beside them, ``outputs/bench-data/conf/dataset/
<case>.yaml`` is a data set config whose ``source`` and ``test_source`` point at those
files through ``${seed}``, so a run composes it like a shipped data set:

    python -m automl --config-dir outputs/bench-data/conf dataset=tiny_adult seed=0

A split, once written, is reused (remove ``outputs/bench-data`` to rebuild them).
The classification splits keep every class in the training rows (a class of one row
stays there), so a class with 2 rows has one training and one test row.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from sklearn.datasets import make_classification

from automl.config import compose_config, to_plain
from automl.data.dataset import load_frame

TEST_SIZE = 0.2


class Unavailable(Exception):
    """The case cannot be built here (its real data file is missing); the message says why."""


@dataclass(frozen=True)
class Case:
    """One awkward data set: what it predicts and how its train/test frames are made."""

    description: str
    target: str
    task: str
    build: Callable[[Path, int], tuple[pd.DataFrame, pd.DataFrame]]  # (data_dir, seed)
    positive_class: str | None = None


def shipped(
    name: str, data_dir: Path, files: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """A shipped data set's cleaned rows (and its test file's), read as its config says."""
    missing = [f for f in files if not (data_dir / f).is_file()]
    if missing:
        raise Unavailable(f"{', '.join(missing)} not in {data_dir} (../shared/data)")
    cfg = compose_config("automl.conf", "train", [f"dataset={name}", f"paths.data_dir={data_dir}"])
    spec = to_plain(cfg.dataset.clean)
    test = load_frame(cfg.dataset.test_source, spec) if cfg.dataset.test_source else None
    return load_frame(cfg.dataset.source, spec), test


def split(
    frame: pd.DataFrame, target: str, seed: int, classify: bool
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A holdout of TEST_SIZE: per class (ceil, but at least one row kept for training)
    for classification, at random for regression."""
    rng = np.random.default_rng(seed)
    groups = frame.groupby(target, sort=True).indices.values() if classify else [range(len(frame))]
    test_rows = []
    for rows in groups:
        rows = rng.permutation(np.asarray(rows))
        n_test = min(math.ceil(len(rows) * TEST_SIZE), len(rows) - 1)
        test_rows.extend(rows[:n_test].tolist())
    is_test = np.zeros(len(frame), dtype=bool)
    is_test[test_rows] = True
    return frame[~is_test].reset_index(drop=True), frame[is_test].reset_index(drop=True)


def sample(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    return frame.sample(n=min(n, len(frame)), random_state=seed).reset_index(drop=True)


def rare_classes_abalone(data_dir: Path, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Abalone's rings as 28 classes; seven have 1-2 rows in all (1-2 training rows)."""
    frame, _ = shipped("abalone", data_dir, ["abalone.csv"])
    return split(frame, "rings", seed, classify=True)


def tiny_adult(data_dir: Path, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """150 training rows of adult (stratified), scored on 2,000 rows of its test file."""
    train, test = shipped("adult", data_dir, ["adult-train.csv", "adult-test.csv"])
    positive = train["income"] == ">50K"
    n_pos = round(150 * positive.mean())
    rows = pd.concat(
        [sample(train[positive], n_pos, seed), sample(train[~positive], 150 - n_pos, seed)]
    )
    return sample(rows, len(rows), seed), sample(test, 2000, seed)


def imbalanced_adult(data_dir: Path, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Adult with the >50K rows subsampled to 1.5 % of the rows, train and test alike."""
    train, test = shipped("adult", data_dir, ["adult-train.csv", "adult-test.csv"])

    def thin(frame: pd.DataFrame) -> pd.DataFrame:
        positive = frame["income"] == ">50K"
        n_pos = round((~positive).sum() * 0.015 / 0.985)
        rows = pd.concat([frame[~positive], sample(frame[positive], n_pos, seed)])
        return sample(rows, len(rows), seed)

    return thin(train), thin(test)


def wide_synthetic(data_dir: Path, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """400 rows x 300 columns (15 informative, 10 redundant, the rest noise), binary."""
    X, y = make_classification(
        n_samples=400, n_features=300, n_informative=15, n_redundant=10, flip_y=0.03,
        random_state=0,
    )  # fmt: skip
    frame = pd.DataFrame(X, columns=[f"x{i:03d}" for i in range(X.shape[1])])
    frame["label"] = np.where(y == 1, "yes", "no")
    return split(frame, "label", seed, classify=True)


def many_classes_synthetic(data_dir: Path, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """3,000 rows, 30 columns, 25 classes of about 120 rows each."""
    X, y = make_classification(
        n_samples=3000, n_features=30, n_informative=15, n_redundant=5, n_classes=25,
        n_clusters_per_class=1, class_sep=2.0, flip_y=0.02, random_state=0,
    )  # fmt: skip
    frame = pd.DataFrame(X, columns=[f"x{i:02d}" for i in range(X.shape[1])])
    frame["label"] = [f"c{k:02d}" for k in y]
    return split(frame, "label", seed, classify=True)


def heavy_tail_synthetic(data_dir: Path, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """3,000 rows; a log-normal target (the largest values are ~100x the median)."""
    rng = np.random.default_rng(0)
    n = 3000
    frame = pd.DataFrame(rng.normal(size=(n, 8)), columns=[f"x{i}" for i in range(8)])
    frame["region"] = rng.choice(["north", "south", "east", "west"], size=n)
    effect = frame["region"].map({"north": 0.0, "south": 0.4, "east": -0.3, "west": 0.8})
    log_y = 0.8 * frame["x0"] + 0.5 * frame["x1"] * frame["x2"] + np.sin(2 * frame["x3"]) + effect
    frame["amount"] = np.exp(1.0 + log_y + rng.normal(scale=0.75, size=n)).round(2)
    return split(frame, "amount", seed, classify=False)


CASES: dict[str, Case] = {
    "rare_classes_abalone": Case(
        "abalone rings as 28 classes, several with 1-2 training rows", "rings", "multiclass",
        rare_classes_abalone,
    ),
    "tiny_adult": Case("adult: 150 training rows", "income", "binary", tiny_adult, ">50K"),
    "wide_synthetic": Case(
        "generated: 320 training rows x 300 columns", "label", "binary", wide_synthetic, "yes"
    ),
    "imbalanced_adult": Case(
        "adult with 1.5 % positives", "income", "binary", imbalanced_adult, ">50K"
    ),
    "many_classes_synthetic": Case(
        "generated: 25 classes", "label", "multiclass", many_classes_synthetic
    ),
    "heavy_tail_synthetic": Case(
        "generated: log-normal regression target", "amount", "regression", heavy_tail_synthetic
    ),
}  # fmt: skip


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Write atomically: a half-written file never looks finished to a later run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)


def prepare(name: str, seed: int, data_dir: Path, root: Path) -> Path:
    """Write case ``name``'s split for ``seed`` (when missing) and its data set YAML under
    ``root``; returns the config folder to add to Hydra's search path. Raises Unavailable."""
    case = CASES[name]
    folder = root / name / f"seed{seed}"
    if not (folder / "test.parquet").is_file():
        train, test = case.build(data_dir, seed)
        write_parquet(train, folder / "train.parquet")
        write_parquet(test, folder / "test.parquet")
    source = {
        "_target_": "automl.data.sources.FileSource",
        "path": str(root / name / "seed${seed}" / "train.parquet"),
        "reader": {"_target_": "pandas.read_parquet", "_partial_": True},
    }
    node = {
        "name": name,
        "description": f"bench/awkward.py: {case.description}",
        "target": case.target,
        "task": case.task,
        "positive_class": case.positive_class,
        "source": source,
        "test_source": {
            **source,
            "path": source["path"].replace("train.parquet", "test.parquet"),
            "reader": dict(source["reader"]),
        },
    }
    conf = root / "conf"
    (conf / "dataset").mkdir(parents=True, exist_ok=True)
    (conf / "dataset" / f"{name}.yaml").write_text(yaml.safe_dump(node, sort_keys=False))
    return conf
