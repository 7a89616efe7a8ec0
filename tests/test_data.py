"""Sources, cleaning and loading of the real data sets."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import pandas as pd
import pytest
from helpers import SHARED_DATA, compose_train, needs_shared_data

from automl.config import build
from automl.data.dataset import clean, infer_task, load_dataset
from automl.data.sources import FileSource
from automl.errors import DataError


def load(name: str, *overrides: str):
    cfg = compose_train([f"dataset={name}", *overrides])
    return load_dataset(cfg.dataset, cfg.evaluation, cfg.seed)


@needs_shared_data
def test_adult_uses_its_official_test_file():
    data = load("adult")
    assert (len(data.train), len(data.test)) == (32561, 16281)
    assert set(data.test["income"]) == {"<=50K", ">50K"}  # the trailing "." is gone
    assert data.classes == ["<=50K", ">50K"]  # the positive class comes last
    assert data.train["workclass"].isna().sum() > 0  # "?" became missing
    assert not data.train["workclass"].dropna().str.startswith(" ").any()


@needs_shared_data
@pytest.mark.parametrize(
    ("name", "task", "rows"),
    [
        ("abalone", "regression", 4177),
        ("winequality_red", "regression", 1599),
        ("horse_colic", "binary", 300),
    ],
)
def test_file_datasets_split_by_config(name, task, rows):
    data = load(name, "evaluation.test_size=0.25")
    assert data.task == task
    assert len(data.train) + len(data.test) == rows
    # a quarter of the distinct rows: exact duplicates (winequality_red has 240) stay
    # together on one side, so the row count can drift a little
    assert len(data.test) == pytest.approx(rows * 0.25, rel=0.02)


@needs_shared_data
def test_horse_colic_drops_its_leaky_columns():
    data = load("horse_colic")
    assert "outcome" not in data.features and "hospital_number" not in data.features
    assert data.classes == ["2", "1"]


def test_stratified_split_keeps_class_shares():
    data = load("breast_cancer")
    train_share = (data.train["diagnosis"] == "malignant").mean()
    test_share = (data.test["diagnosis"] == "malignant").mean()
    assert abs(train_share - test_share) < 0.02


@pytest.mark.parametrize("name", ["iris", "wine", "breast_cancer", "digits", "diabetes"])
def test_embedded_datasets_load_offline(name):
    data = load(name)
    assert len(data.train) > len(data.test) > 0


def test_task_is_inferred():
    assert infer_task(pd.Series(["a", "b", "a"]), 20) == "binary"
    assert infer_task(pd.Series(["a", "b", "c"]), 20) == "multiclass"
    assert infer_task(pd.Series([1, 2, 3, 4]), 20) == "multiclass"
    assert infer_task(pd.Series([0.5, 1.2, 3.3]), 20) == "regression"
    assert infer_task(pd.Series(range(100)), 20) == "regression"


def test_cleaning_is_declarative():
    raw = pd.DataFrame({" a ": [" x ", "?", "y"], "b": ["1.", "2.", "3"], "c": [1, 2, 3]})
    spec = {"na_values": ["?"], "strip_suffix": {"b": "."}, "rename": {"a": "alpha"}, "drop": ["c"]}
    out = clean(raw, spec)
    assert list(out.columns) == ["alpha", "b"]
    assert out["alpha"].tolist()[0] == "x" and pd.isna(out["alpha"][1])
    assert out["b"].tolist() == ["1", "2", "3"]


@pytest.mark.parametrize(
    ("suffix", "writer", "reader"),
    [
        ("csv", lambda f, p: f.to_csv(p, index=False), {"_target_": "pandas.read_csv"}),
        (
            "tsv",
            lambda f, p: f.to_csv(p, sep="\t", index=False),
            {"_target_": "pandas.read_csv", "sep": "\t"},
        ),
        ("parquet", lambda f, p: f.to_parquet(p), {"_target_": "pandas.read_parquet"}),
        ("json", lambda f, p: f.to_json(p, orient="records"), {"_target_": "pandas.read_json"}),
        (
            "jsonl",
            lambda f, p: f.to_json(p, orient="records", lines=True),
            {"_target_": "pandas.read_json", "lines": True},
        ),
    ],
)
def test_file_source_formats(tmp_path, suffix, writer, reader):
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    path = tmp_path / f"iris.{suffix}"
    writer(frame, path)
    source = build(
        {
            "_target_": "automl.data.sources.FileSource",
            "path": str(path),
            "reader": {**reader, "_partial_": True},
        }
    )
    loaded = source.load()
    assert loaded.shape == frame.shape
    assert loaded["sepal length (cm)"].sum() == pytest.approx(frame["sepal length (cm)"].sum())


def test_relative_path_resolves_under_data_dir(tmp_path):
    (tmp_path / "t.csv").write_text("a,b\n1,2\n")
    source = FileSource("t.csv", reader=pd.read_csv, data_dir=str(tmp_path))
    assert source.load().shape == (1, 2)


def test_malformed_file_is_one_clear_error(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(b'a,b\n1,2\n3,4,5,6\n"unclosed\n')
    with pytest.raises(DataError, match="cannot read .*bad.csv"):
        FileSource(str(path), reader=pd.read_csv).load()


@needs_shared_data
def test_download_goes_through_the_cache(tmp_path):
    """A file missing locally is fetched from its URL (a real local HTTP server) once."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(SHARED_DATA))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/abalone.csv"
        source = FileSource(
            "abalone.csv",
            reader=functools.partial(pd.read_csv, header=None),
            url=url,
            cache_dir=str(tmp_path / "cache"),
        )
        assert source.load().shape == (4177, 9)
        assert (tmp_path / "cache" / "abalone.csv").is_file()
    finally:
        server.shutdown()
    assert source.load().shape == (4177, 9)  # served from the cache with the server gone
    assert not list(Path(tmp_path / "cache").glob(".*"))  # no temp files left behind
