"""Batch scoring on Dask (engine=dask): the single-process output, partitioned, exactly."""

from __future__ import annotations

import json
import pathlib
import shutil

import joblib
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from helpers import (
    FAST,
    SHARED_DATA,
    adult_test_rows,
    compose_train,
    free_port,
    needs_shared_data,
    run_cli,
)

import automl.services.scoring as batch
from automl.atomic import publish, temp_path
from automl.bundle.model import MANIFEST, PIPELINE, pin_model
from automl.bundle.registry import Registry
from automl.config import compose_config
from automl.errors import AutomlError, ConfigError, ContractError
from automl.io import line_split, parquet_split, partitions, read_chunks
from automl.services.distributed_scoring import ModelPin, worker_model
from automl.services.training import train


def predict_cfg(**keys):
    """The predict config as `python -m automl.predict key=value ...` composes it."""
    overrides = [f"{k}={v}" for k, v in {"progress": "false", **keys}.items()]
    return compose_config("automl.conf.apps", "predict", overrides)


@pytest.fixture(scope="module")
def adult_run(tmp_path_factory):
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    run = tmp_path_factory.mktemp("adult_run")
    overrides = ["dataset=adult", "model=lgbm", *FAST, "registry.enabled=false"]
    train(compose_train(overrides), run)
    return run


@pytest.fixture(scope="module")
def cluster():
    """A Dask scheduler with two worker processes, reached by `engine.address`."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as local:
        yield local.scheduler_address


def adult_rows(n: int, text: bool = False) -> pd.DataFrame:
    """``n`` rows of the adult test file repeated; rows 10, 11, n/2 + 3 and n - 1 break the
    contract (with ``text``, row 10's age is a word, as only a text file can hold)."""
    test = adult_test_rows()
    rows = pd.concat([test] * (n // len(test) + 1), ignore_index=True).head(n)
    if text:
        rows = rows.astype({"age": object})
    rows.loc[10, "age"] = "old" if text else -1
    rows.loc[11, ["age", "sex"]] = [-3, "X"]
    rows.loc[n // 2 + 3, "sex"] = "Unknown"
    rows.loc[n - 1, "education"] = np.nan
    return rows


def read_parts(folder) -> pd.DataFrame:
    """A folder of part files read back in part order."""
    parts = sorted(folder.glob("part-*.parquet"))
    assert parts and not [p for p in folder.iterdir() if p not in parts]
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)


def assert_same_output(local, folder) -> None:
    """The parts hold the single-process file's rows in order, its columns and types, its
    values bit for bit."""
    expected, got = pd.read_parquet(local), read_parts(folder)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    pd.testing.assert_frame_equal(pd.read_parquet(folder), expected, check_exact=True)
    schema = pq.read_schema(local)
    for part in folder.iterdir():
        assert pq.read_schema(part).equals(schema, check_metadata=False), part.name


def score_both(tmp_path, src, engine: dict, **keys):
    """The summaries of scoring ``src`` in one process and on Dask (``engine.*`` keys)."""
    local = batch.predict_file(predict_cfg(input=src, output=tmp_path / "local.parquet", **keys))
    keys.update({"engine": "dask", **{f"engine.{k}": v for k, v in engine.items()}})
    distributed = batch.predict_file(predict_cfg(input=src, output=tmp_path / "dask", **keys))
    return local, distributed


def check_same(tmp_path, local, distributed, n: int) -> None:
    assert (distributed.rows_read, distributed.rows_scored) == (n, n - 4)
    assert (local.rows_read, local.rows_scored, local.rows_rejected) == (
        distributed.rows_read,
        distributed.rows_scored,
        distributed.rows_rejected,
    )
    assert local.reasons == distributed.reasons
    assert distributed.output == tmp_path / "dask"
    assert distributed.rejects == tmp_path / "dask.rejects"
    assert_same_output(tmp_path / "local.parquet", tmp_path / "dask")
    assert_same_output(tmp_path / "local.rejects.parquet", tmp_path / "dask.rejects")
    assert read_parts(tmp_path / "dask.rejects")["row"].tolist() == [10, 11, n // 2 + 3, n - 1]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# --- partitions: an input split, read back, is the input -------------------------------


@pytest.fixture(scope="module")
def formats():
    """The shipped formats registry."""
    return predict_cfg(model="m", input="in.csv", output="out.csv").formats


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("ending", ["", "\n\n", "no newline"])
def test_line_ranges_read_back_as_the_file(tmp_path, formats, newline, ending):
    rows = pd.DataFrame({"a": range(1003), "b": [f"x{i}" if i % 7 else None for i in range(1003)]})
    text = rows.to_csv(index=False, lineterminator=newline)
    text = text.removesuffix(newline) if ending == "no newline" else text + ending
    (tmp_path / "in.csv").write_bytes(text.encode())
    expected = pd.concat(read_chunks(tmp_path / "in.csv", formats, 50))
    for rows_each in (50, 350, 1000, 5000):
        for block in (7, 1 << 20):  # line ends found across the blocks read, too
            parts = line_split(tmp_path / "in.csv", rows_each, block=block)
            assert [p.start for p in parts] == list(range(0, 1003, rows_each))
            got = pd.concat(c for p in parts for c in p.chunks(formats, 50))
            pd.testing.assert_frame_equal(got, expected)


def test_parquet_row_ranges_and_a_folder_read_back_as_the_input(tmp_path, formats):
    rows = pd.DataFrame({"a": range(1003), "b": [f"x{i}" for i in range(1003)]})
    rows.to_parquet(tmp_path / "in.parquet", row_group_size=170)
    for rows_each in (1, 60, 170, 400, 5000):
        parts = parquet_split(tmp_path / "in.parquet", rows_each)
        got = pd.concat(c for p in parts for c in p.chunks(formats, 60))
        pd.testing.assert_frame_equal(got, rows)

    folder = tmp_path / "folder"
    folder.mkdir()
    for i in range(12):  # in-2 before in-10: numbers in names compare as numbers
        rows.iloc[i * 90 : (i + 1) * 90].to_parquet(folder / f"in-{i}.parquet")
    (folder / "_SUCCESS").touch()
    parts = partitions(folder, formats, 40)
    assert [p.start for p in parts][:4] == [0, 40, 80, 90]
    pd.testing.assert_frame_equal(pd.concat(c for p in parts for c in p.chunks(formats, 25)), rows)

    rows.to_csv(folder / "in-12.csv.gz", index=False)
    with pytest.raises(ConfigError, match=r"in-12\.csv\.gz' cannot be split"):
        partitions(folder, formats, 40)


def test_publish_replaces_a_folder_whole(tmp_path):
    old, new = tmp_path / "out", temp_path(tmp_path / "out", directory=True)
    old.mkdir()
    (old / "part-00000.parquet").write_text("old")
    (old / "part-00001.parquet").write_text("old")
    (new / "part-00000.parquet").write_text("new")
    publish(new, old, replace=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert [(p.name, p.read_text()) for p in old.iterdir()] == [("part-00000.parquet", "new")]


# --- refused before any work -------------------------------------------------------------


@needs_shared_data
def test_outputs_that_are_not_folders_of_parts_are_refused(adult_run, tmp_path):
    src = tmp_path / "in.parquet"
    adult_test_rows().head(10).to_parquet(src)
    for output, message in [
        ("scored.csv", r"output=.*scored\.csv names a csv file, but engine=dask writes a folder"),
        ("mine", r"output=.*mine exists and is not an earlier run's folder"),
    ]:
        (tmp_path / "mine").mkdir(exist_ok=True)
        (tmp_path / "mine" / "notes.txt").write_text("keep me")
        cfg = predict_cfg(model=adult_run, input=src, output=tmp_path / output, engine="dask")
        with pytest.raises(ConfigError, match=message):
            batch.predict_file(cfg)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_a_contract_with_a_unique_column_is_refused(tmp_path):
    from sklearn.dummy import DummyRegressor

    from automl.bundle.model import Model

    manifest = {
        "dataset": "tiny",
        "target": "y",
        "task": "regression",
        "classes": None,
        "contract": {"columns": {"id": {"dtype": "int", "unique": True}, "y": {"dtype": "float"}}},
        "clean": {},
    }
    bundle = Model(DummyRegressor().fit([[0]], [0]), manifest).save(tmp_path / "model")
    pd.DataFrame({"id": [1, 2]}).to_csv(tmp_path / "in.csv", index=False)
    cfg = predict_cfg(model=bundle, input=tmp_path / "in.csv", output=tmp_path / "o", engine="dask")
    with pytest.raises(ConfigError, match="unique column.*id.*engine=local"):
        batch.predict_file(cfg)


class Payload:
    """A pickle that creates ``marker`` when it is unpickled (stands in for any code)."""

    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


@needs_shared_data
def test_workers_load_only_the_bytes_the_client_pinned(adult_run, tmp_path):
    bundle = shutil.copytree(adult_run / "model", tmp_path / "model")
    pin = ModelPin(*pin_model(bundle), "{}", None)
    joblib.dump(Payload(tmp_path / "ran"), bundle / PIPELINE)  # changed after the pin
    with pytest.raises(AutomlError, match="does not match its SHA-256"):
        worker_model(pin)
    assert not (tmp_path / "ran").exists()


@needs_shared_data
def test_a_registered_model_is_scored_by_reference_and_a_changed_one_refused(
    adult_run, cluster, tmp_path
):
    registry = Registry(tmp_path / "r.db", tmp_path / "models")
    manifest = json.loads((adult_run / "model" / MANIFEST).read_text())
    version = registry.register("adult", adult_run / "model", manifest, adult_run)
    src = tmp_path / "in.parquet"
    adult_test_rows().head(3000).to_parquet(src)
    keys = {
        "registry.uri": tmp_path / "r.db",
        "registry.store": tmp_path / "models",
        "model": f"adult/{version}",
        "input": src,
        "chunk_size": 1000,
        "engine": "dask",
        "engine.address": cluster,
    }
    assert batch.predict_file(predict_cfg(output=tmp_path / "scored", **keys)).rows_scored == 3000

    joblib.dump(Payload(tmp_path / "ran"), registry.resolve(f"adult/{version}") / PIPELINE)
    with pytest.raises(AutomlError, match=f"registered model 'adult/{version}' refused"):
        batch.predict_file(predict_cfg(output=tmp_path / "again", **keys))
    assert not (tmp_path / "ran").exists() and not (tmp_path / "again").exists()


# --- the same output as one process ------------------------------------------------------


@needs_shared_data
def test_csv_scored_on_a_local_cluster_equals_one_process(adult_run, tmp_path):
    n = 50_000
    src = tmp_path / "in.csv"
    adult_rows(n, text=True).to_csv(src, index=False)
    local, distributed = score_both(tmp_path, src, {"workers": 2}, model=adult_run, chunk_size=5000)
    check_same(tmp_path, local, distributed, n)
    assert sorted(p.name for p in (tmp_path / "dask").iterdir())[:2] == [
        "part-00000.parquet",
        "part-00001.parquet",
    ]


@pytest.mark.slow  # ~40 s; the 50,000-row CSV test is the default run's
@needs_shared_data
def test_a_million_rows_on_a_local_cluster_equal_one_process(adult_run, tmp_path):
    n = 1_000_000
    src = tmp_path / "in.parquet"
    adult_rows(n).to_parquet(src, index=False)  # one row group: partitions split it
    local, distributed = score_both(tmp_path, src, {"workers": 2}, model=adult_run)
    check_same(tmp_path, local, distributed, n)
    assert len(list((tmp_path / "dask").iterdir())) == 10


@needs_shared_data
def test_a_folder_of_parquet_files_on_a_scheduler_equals_one_process(adult_run, cluster, tmp_path):
    n = 20_000
    rows = adult_rows(n)
    rows.to_parquet(tmp_path / "all.parquet", index=False)
    folder = tmp_path / "in"
    folder.mkdir()
    cuts = [0, 1500, 1501, 7000, 9000, 16000, n]  # uneven files, one of a single row
    for i, (a, b) in enumerate(zip(cuts, cuts[1:])):
        rows.iloc[a:b].to_parquet(folder / f"rows-{i * 2}.parquet", index=False)
    (tmp_path / "dask").mkdir()  # an earlier run's output folder is replaced
    (tmp_path / "dask" / "part-00099.parquet").write_text("earlier")
    keys = {"model": adult_run, "chunk_size": 2000}
    local = batch.predict_file(
        predict_cfg(input=tmp_path / "all.parquet", output=tmp_path / "local.parquet", **keys)
    )
    keys.update({"engine": "dask", "engine.address": cluster})
    distributed = batch.predict_file(predict_cfg(input=folder, output=tmp_path / "dask", **keys))
    check_same(tmp_path, local, distributed, n)

    # good rows only (files without rows too): no rejects folder, the earlier run's removed
    rows.drop(index=[10, 11, n // 2 + 3, n - 1]).to_parquet(folder / "rows-0.parquet")
    for i in range(1, len(cuts) - 1):
        rows.head(0).to_parquet(folder / f"rows-{i * 2}.parquet")
    again = batch.predict_file(predict_cfg(input=folder, output=tmp_path / "dask", **keys))
    assert (again.rows_read, again.rows_rejected, again.rejects) == (n - 4, 0, None)
    assert not (tmp_path / "dask.rejects").exists()


@needs_shared_data
@pytest.mark.filterwarnings("error::UserWarning")  # no library errors pickled back
@pytest.mark.parametrize("bad", [[10, 11, 10_003, 19_999], [5_003, 15_001]])
def test_on_bad_rows_fail_leaves_no_output_and_names_the_first_bad_row(
    adult_run, cluster, tmp_path, bad
):
    """Row 10 fails the first partition, scored alone; row 5,003 a later one, scored with
    the others at once: the error is the one a single process gives, either way."""
    src = tmp_path / "in.csv"
    rows = (
        pd.concat([adult_test_rows()] * 2, ignore_index=True).head(20_000).astype({"age": object})
    )
    rows.loc[bad[0], "age"] = "old"
    rows.loc[bad[1:], "sex"] = "X"
    rows.to_csv(src, index=False)
    keys = {"model": adult_run, "input": src, "chunk_size": 2000, "on_bad_rows": "fail"}
    with pytest.raises(ContractError) as local:
        batch.predict_file(predict_cfg(output=tmp_path / "local.parquet", **keys))
    cfg = predict_cfg(
        output=tmp_path / "dask", engine="dask", **{"engine.address": cluster}, **keys
    )
    with pytest.raises(ContractError) as distributed:
        batch.predict_file(cfg)
    assert str(distributed.value) == str(local.value)
    assert f"at rows [{bad[0]}]" in str(distributed.value)
    assert list(tmp_path.iterdir()) == [src]


@needs_shared_data
def test_cli_unreachable_scheduler_is_one_error_line_and_no_output(adult_run, tmp_path):
    src, out = tmp_path / "in.parquet", tmp_path / "scored"
    adult_test_rows().head(100).to_parquet(src)
    result = run_cli(
        "automl.predict",
        f"model={adult_run}",
        f"input={src}",
        f"output={out}",
        "engine=dask",
        f"engine.address=tcp://127.0.0.1:{free_port()}",
        "engine.connect_timeout=2",
    )
    assert result.returncode == 1
    log = (result.stdout + result.stderr).strip().splitlines()
    assert len(log) == 1, log
    assert log[0].startswith("[ERROR] cannot reach the Dask scheduler at tcp://127.0.0.1:")
    assert "(engine.address)" in log[0]
    assert list(tmp_path.iterdir()) == [src]
