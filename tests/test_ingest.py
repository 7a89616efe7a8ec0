"""`python -m automl.ingest`: real data in many formats becomes a data set that trains."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import ADULT_COLUMNS, FAST, SHARED_DATA, compose_train, needs_shared_data, run_cli
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from automl.config import DatasetConfig, register_schemas
from automl.errors import DataError
from automl.services.ingest import ingest
from automl.services.training import train


def ingest_cfg(overrides: list[str]):
    register_schemas()
    with initialize_config_module("automl.conf.apps", version_base="1.3"):
        return compose("ingest", overrides=["progress=false", "report.enabled=false", *overrides])


def train_ingested(conf_dir: Path, name: str, run: Path, extra: list[str] | None = None) -> dict:
    """Train on the ingested YAML exactly as written (loaded into the typed config)."""
    cfg = compose_train(["model=lgbm", *FAST, *(extra or [])])
    loaded = OmegaConf.load(conf_dir / "dataset" / f"{name}.yaml")
    cfg.dataset = OmegaConf.merge(OmegaConf.structured(DatasetConfig), loaded)
    return train(cfg, run)


def wine() -> pd.DataFrame:
    from sklearn.datasets import load_wine

    data = load_wine(as_frame=True)
    frame = data.frame.rename(columns={"od280/od315_of_diluted_wines": "od280_od315"})
    frame["cultivar"] = [data.target_names[i] for i in frame.pop("target")]
    return frame


WRITERS = {
    "csv": lambda f, p: f.to_csv(p, index=False),
    "tsv": lambda f, p: f.to_csv(p, sep="\t", index=False),
    "csv.gz": lambda f, p: f.to_csv(p, index=False),
    "csv.bz2": lambda f, p: f.to_csv(p, index=False),
    "xlsx": lambda f, p: f.to_excel(p, index=False),
    "parquet": lambda f, p: f.to_parquet(p, index=False),
    "feather": lambda f, p: f.reset_index(drop=True).to_feather(p),
    "json": lambda f, p: f.to_json(p, orient="records"),
    "jsonl": lambda f, p: f.to_json(p, orient="records", lines=True),
}


@pytest.mark.parametrize("suffix", sorted(WRITERS))
def test_each_format_ingests_and_trains(tmp_path, suffix):
    source = tmp_path / f"wine.{suffix}"
    WRITERS[suffix](wine(), source)
    summary = ingest(
        ingest_cfg(
            [f"input={source}", "target=cultivar", "name=wine_in", f"conf_dir={tmp_path / 'conf'}"]
        )
    )
    assert summary["written"] == 178 and summary["task"] == "multiclass"
    metrics = train_ingested(tmp_path / "conf", "wine_in", tmp_path / "run")
    assert metrics["accuracy"] > 0.85


def test_libsvm_and_sql_ingest_and_train(tmp_path):
    from sklearn.datasets import dump_svmlight_file, load_breast_cancer

    data = load_breast_cancer()
    dump_svmlight_file(data.data, data.target, str(tmp_path / "bc.svm"))
    summary = ingest(
        ingest_cfg(
            [
                f"input={tmp_path / 'bc.svm'}",
                "target=label",
                "name=bc",
                f"conf_dir={tmp_path / 'conf'}",
            ]
        )
    )
    assert summary["task"] == "binary" and summary["written"] == 569
    assert train_ingested(tmp_path / "conf", "bc", tmp_path / "run1")["auc"] > 0.95

    database = tmp_path / "wine.db"
    with sqlite3.connect(database) as db:
        wine().to_sql("wines", db, index=False)
    summary = ingest(
        ingest_cfg(
            [
                f"input=sqlite:///{database}",
                "+read.query='SELECT * FROM wines'",
                "target=cultivar",
                "name=wine_sql",
                f"conf_dir={tmp_path / 'conf'}",
            ]
        )
    )
    assert summary["written"] == 178
    assert train_ingested(tmp_path / "conf", "wine_sql", tmp_path / "run2")["accuracy"] > 0.85


def test_types_ids_and_constants(tmp_path):
    frame = wine()
    frame.insert(0, "wine_id", np.arange(1000, 1000 + len(frame)))
    frame["batch"] = "A"
    frame["tasted"] = pd.date_range("2024-01-01", periods=len(frame), freq="D").astype(str)
    frame["organic"] = np.where(frame["alcohol"] > 13, "yes", "no")
    frame.to_csv(tmp_path / "w.csv", index=False)
    conf = tmp_path / "conf"
    ingest(
        ingest_cfg([f"input={tmp_path / 'w.csv'}", "target=cultivar", "name=w", f"conf_dir={conf}"])
    )
    spec = yaml.safe_load((conf / "dataset" / "w.yaml").read_text())
    text = (conf / "dataset" / "w.yaml").read_text()
    assert spec["clean"]["drop"] == ["batch", "wine_id"]
    assert "wine_id" not in text.split("\nname:")[0]  # no data in the comments
    columns = spec["contract"]["columns"]
    assert columns["tasted"]["dtype"] == "datetime" and columns["organic"]["dtype"] == "bool"
    assert columns["cultivar"]["allowed"] == ["class_0", "class_1", "class_2"]
    low, high = frame["alcohol"].min(), frame["alcohol"].max()
    assert columns["alcohol"]["min"] == pytest.approx(low - 0.1 * (high - low), abs=1e-5)
    assert columns["alcohol"]["nullable"] is False
    assert train_ingested(conf, "w", tmp_path / "run")["accuracy"] > 0.85


def mixed(tmp_path: Path) -> Path:
    frame = wine()
    frame["alcohol"] = frame["alcohol"].astype(str)
    frame.loc[[5, 17], "alcohol"] = ["n.a.", "13,2"]  # 2 of 178 are not numbers
    frame.to_csv(tmp_path / "mixed.csv", index=False)
    return tmp_path / "mixed.csv"


def test_mixed_types_fail_with_the_row(tmp_path):
    with pytest.raises(DataError, match=r"row 7: alcohol: expected a number.*on_bad_rows"):
        ingest(
            ingest_cfg(
                [
                    f"input={mixed(tmp_path)}",
                    "target=cultivar",
                    "name=m",
                    f"conf_dir={tmp_path / 'conf'}",
                ]
            )
        )
    assert not list((tmp_path / "conf").rglob("*.parquet"))
    assert not (tmp_path / "conf" / "dataset").exists()


@pytest.mark.parametrize("mode", ["skip", "quarantine"])
def test_bad_rows_skipped_or_quarantined(tmp_path, mode):
    summary = ingest(
        ingest_cfg(
            [
                f"input={mixed(tmp_path)}",
                "target=cultivar",
                "name=m",
                f"conf_dir={tmp_path / 'conf'}",
                f"on_bad_rows={mode}",
            ]
        )
    )
    assert (summary["read"], summary["written"], summary["rejected"]) == (178, 176, 2)
    if mode == "quarantine":
        rejects = pd.read_csv(summary["rejects"])
        assert rejects["row"].tolist() == [7, 19]
        assert rejects["reason"].str.contains("alcohol: expected a number").all()
        assert rejects["alcohol"].tolist() == ["n.a.", "13,2"]
    else:
        assert summary["rejects"] is None


def test_unknown_target_names_the_columns(tmp_path):
    wine().to_csv(tmp_path / "w.csv", index=False)
    with pytest.raises(DataError, match="target 'quality' is not a column.*alcohol"):
        ingest(
            ingest_cfg(
                [
                    f"input={tmp_path / 'w.csv'}",
                    "target=quality",
                    "name=w",
                    f"conf_dir={tmp_path / 'conf'}",
                ]
            )
        )


@needs_shared_data
def test_adult_ingested_matches_the_hand_written_data_set(tmp_path, train_config):
    conf = tmp_path / "conf"
    names = "[" + ",".join(ADULT_COLUMNS) + "]"
    result = run_cli(
        "automl.ingest",
        f"input={SHARED_DATA / 'adult-train.csv'}",
        "target=income",
        "name=adult_in",
        f"conf_dir={conf}",
        f"+read.names={names}",
        "+read.header=false",
        "progress=false",
    )
    assert result.returncode == 0, result.stderr
    assert (conf / "data" / "adult_in.parquet").is_file()
    assert (conf / "reports" / "adult_in" / "profile.html").is_file()
    spec = yaml.safe_load((conf / "dataset" / "adult_in.yaml").read_text())
    assert spec["task"] == "binary" and spec["positive_class"] == ">50K"
    ingested = train_ingested(conf, "adult_in", tmp_path / "a")
    hand = train(
        train_config(["dataset=adult", "dataset.test_source=null", "model=lgbm", *FAST]),
        tmp_path / "b",
    )
    assert abs(ingested["auc"] - hand["auc"]) <= 0.002, (ingested["auc"], hand["auc"])
    result = run_cli("automl", "--config-dir", str(conf), "dataset=adult_in", "model=linear", *FAST)
    assert result.returncode == 0, result.stderr


def test_jsonl_canonical_copy_on_request(tmp_path):
    wine().to_csv(tmp_path / "w.csv", index=False)
    summary = ingest(
        ingest_cfg(
            [
                f"input={tmp_path / 'w.csv'}",
                "target=cultivar",
                "name=wj",
                f"conf_dir={tmp_path / 'conf'}",
                "output_format=jsonl",
            ]
        )
    )
    assert summary["data"].endswith("wj.jsonl")
    assert len(pd.read_json(summary["data"], lines=True)) == 178
    assert train_ingested(tmp_path / "conf", "wj", tmp_path / "run")["accuracy"] > 0.85
