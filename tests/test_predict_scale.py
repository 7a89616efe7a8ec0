"""Batch scoring at scale: chunked reading and writing, rejects, failures that leave no output."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from helpers import (
    FAST,
    SHARED_DATA,
    adult_test_rows,
    compose_train,
    needs_shared_data,
    run_cli,
)
from hydra import compose, initialize_config_module

import automl.services.scoring as batch
from automl import load_model
from automl.config import register_schemas
from automl.data.contract import Contract
from automl.errors import ConfigError, ContractError, DataError
from automl.io import split_suffix
from automl.services.training import train

WRITE = {
    "csv": lambda f, p: f.to_csv(p, index=False),
    "parquet": lambda f, p: f.to_parquet(p, index=False),
    "jsonl": lambda f, p: f.to_json(p, orient="records", lines=True),
    "json": lambda f, p: f.to_json(p, orient="records"),
}
READ = {
    "csv": pd.read_csv,
    "parquet": pd.read_parquet,
    "jsonl": lambda p: pd.read_json(p, lines=True),
    "json": pd.read_json,
}


@pytest.fixture(scope="module")
def adult_run(tmp_path_factory):
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    run = tmp_path_factory.mktemp("adult_run")
    overrides = ["dataset=adult", "model=lgbm", *FAST, "tracking=none", "registry.enabled=false"]
    train(compose_train(overrides), run)
    return run


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    """5,000 raw rows of the official adult test file, as a user would have them."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    return adult_test_rows().head(5000)


def predict_cfg(**keys):
    """The predict config as `python -m automl.predict key=value ...` composes it."""
    register_schemas()
    overrides = [f"{k}={v}" for k, v in {"progress": "false", **keys}.items()]
    with initialize_config_module("automl.conf.apps", version_base="1.3"):
        return compose("predict", overrides=overrides)


def leftovers(folder) -> list[str]:
    """Temp files a job left behind (they start with a dot)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def bad_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with rows 10, 11, 2500 and 4999 breaking the contract."""
    bad = rows.astype({"age": object})
    bad.loc[10, "age"] = "old"  # not a number
    bad.loc[11, ["age", "sex"]] = [-3, "X"]  # two problems in one row
    bad.loc[2500, "sex"] = "Unknown"  # outside the allowed set
    bad.loc[4999, "education"] = np.nan  # missing in a non-nullable column
    return bad


def test_failing_rows_keeps_the_chunk_index_and_gives_every_reason():
    contract = Contract.from_config(
        {
            "columns": {
                "age": {"dtype": "int", "nullable": False, "min": 0},
                "color": {"dtype": "category", "allowed": ["red", "blue"]},
            }
        }
    )
    chunk = pd.DataFrame(
        {"age": ["30", "abc", "-1", "7"], "color": ["red", "pink", "green", "blue"]},
        index=range(3000, 3004),  # the third chunk of 1,000 rows
    )
    reasons = contract.failing_rows(chunk)
    assert list(reasons.index) == [3000, 3001, 3002, 3003]
    assert reasons[3000] == "" and reasons[3003] == ""
    assert reasons[3001].startswith("age: wrong type") and "color: value not in" in reasons[3001]
    # the wrong-typed value in row 3001 must not hide the range check of row 3002
    assert "age: failed check greater_than_or_equal_to" in reasons[3002]
    assert "color" in reasons[3002]
    assert "missing" not in reasons[3001]  # a value set aside is not also called missing


@pytest.mark.parametrize(
    ("name", "expected"),
    [("scored.csv", "scored.rejects.csv"), ("a.b.csv.gz", "a.b.rejects.csv.gz")],
)
def test_default_rejects_path(tmp_path, name, expected):
    cfg = predict_cfg(model="m", input="in.csv", output=str(tmp_path / name))
    assert batch.rejects_path(cfg, tmp_path / name).name == expected
    assert split_suffix(tmp_path / "x.parquet", cfg.formats) == ("x", ".parquet")


@pytest.fixture
def tiny_model(tmp_path):
    """A small regression bundle whose contract has a unique id (no data files needed)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import Pipeline

    from automl.bundle.model import Model

    spec = {
        "columns": {
            "id": {"dtype": "int", "nullable": False, "unique": True},
            "x": {"dtype": "float", "min": 0},
            "y": {"dtype": "float"},
        }
    }
    train = pd.DataFrame({"id": range(20), "x": np.arange(20.0), "y": 2 * np.arange(20.0)})
    features = ColumnTransformer([("x", "passthrough", ["x"])])
    pipeline = Pipeline([("features", features), ("model", LinearRegression())])
    pipeline.fit(train[["id", "x"]], train["y"])
    manifest = {
        "dataset": "tiny",
        "target": "y",
        "task": "regression",
        "classes": None,
        "contract": spec,
        "clean": {},
    }
    return Model(pipeline, manifest).save(tmp_path / "tiny_model")


def test_unique_column_is_checked_across_chunks(tiny_model, tmp_path):
    src, out = tmp_path / "in.csv", tmp_path / "scored.csv"
    ids = [0, 1, 2, 3, 4, 5, 6, 3, 8, 8, 10, 11]  # 3 again in chunk 2; 8 twice in chunk 2
    pd.DataFrame({"id": ids, "x": np.arange(12.0)}).to_csv(src, index=False)
    summary = batch.predict_file(predict_cfg(model=tiny_model, input=src, output=out, chunk_size=5))
    assert (summary.rows_read, summary.rows_scored, summary.rows_rejected) == (12, 9, 3)
    rejects = pd.read_csv(summary.rejects)
    assert rejects["row"].tolist() == [7, 8, 9]
    assert rejects["reason"].str.startswith("id: duplicate value").all()
    assert "earlier chunk" in rejects["reason"].iloc[0]
    scored = pd.read_csv(out)
    assert scored["id"].tolist() == [0, 1, 2, 3, 4, 5, 6, 10, 11]
    assert np.allclose(scored["prediction"], 2 * scored["x"])

    pd.DataFrame({"id": [0, 1, 2, 3, 4, 5, 3], "x": np.arange(7.0)}).to_csv(src, index=False)
    cfg = predict_cfg(model=tiny_model, input=src, output=out, chunk_size=5, on_bad_rows="fail")
    with pytest.raises(ContractError, match=r"id: duplicate .* earlier chunk\) at rows \[6\]"):
        batch.predict_file(cfg)


def test_bad_settings_and_inputs_fail_before_any_output(tiny_model, tmp_path):
    src, out = tmp_path / "in.csv", tmp_path / "scored.csv"
    pd.DataFrame({"id": [1, 2], "x": [1.0, 2.0]}).to_csv(src, index=False)
    with pytest.raises(ConfigError, match="on_bad_rows must be one of"):
        batch.predict_file(predict_cfg(model=tiny_model, input=src, output=out, on_bad_rows="x"))
    with pytest.raises(ConfigError, match="chunk_size must be at least 1"):
        batch.predict_file(predict_cfg(model=tiny_model, input=src, output=out, chunk_size=0))
    with pytest.raises(ConfigError, match="rejects and output are the same file"):
        batch.predict_file(predict_cfg(model=tiny_model, input=src, output=out, rejects=out))
    (tmp_path / "empty.csv").write_text("id,x\n")
    with pytest.raises(DataError, match="has no data rows"):
        batch.predict_file(predict_cfg(model=tiny_model, input=tmp_path / "empty.csv", output=out))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.csv", "in.csv", "tiny_model"]


def tiny_rows(path) -> None:
    """Six rows for ``tiny_model``; rows 1 and 3 break its contract (x below 0)."""
    pd.DataFrame({"id": range(6), "x": [1.0, -1.0, 2.0, -5.0, 3.0, 4.0]}).to_csv(path, index=False)


def test_skip_drops_and_counts_bad_rows_and_writes_no_rejects(tiny_model, tmp_path, caplog):
    src, out = tmp_path / "in.csv", tmp_path / "scored.csv"
    tiny_rows(src)
    caplog.set_level(logging.INFO, logger="automl")
    cfg = predict_cfg(model=tiny_model, input=src, output=out, on_bad_rows="skip")
    summary = batch.predict_file(cfg)
    assert (summary.rows_read, summary.rows_scored, summary.rows_rejected) == (6, 4, 2)
    assert summary.rejects is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "scored.csv", "tiny_model"]
    assert pd.read_csv(out)["id"].tolist() == [0, 2, 4, 5]
    assert sum(summary.reasons.values()) == 2
    assert "2 rows break the contract, skipped" in caplog.text
    assert "4 scored" in caplog.text and "2 rejected -> skipped" in caplog.text


def test_reject_is_a_deprecated_alias_of_quarantine(tiny_model, tmp_path, caplog):
    src, out = tmp_path / "in.csv", tmp_path / "scored.csv"
    tiny_rows(src)
    assert predict_cfg(model=tiny_model, input=src, output=out).on_bad_rows == "quarantine"
    caplog.set_level(logging.INFO, logger="automl")
    cfg = predict_cfg(model=tiny_model, input=src, output=out, on_bad_rows="reject")
    summary = batch.predict_file(cfg)
    assert summary.rejects == tmp_path / "scored.rejects.csv"
    rejects = pd.read_csv(summary.rejects)
    assert rejects["row"].tolist() == [1, 3] and rejects["reason"].str.startswith("x: ").all()
    assert pd.read_csv(out)["id"].tolist() == [0, 2, 4, 5]
    assert caplog.text.count("on_bad_rows=reject is deprecated: use on_bad_rows=quarantine") == 1


def test_cli_unknown_on_bad_rows_is_one_error_and_no_output(tiny_model, tmp_path):
    src, out = tmp_path / "in.csv", tmp_path / "scored.csv"
    tiny_rows(src)
    result = run_cli(
        "automl.predict", f"model={tiny_model}", f"input={src}", f"output={out}", "on_bad_rows=drop"
    )
    assert result.returncode == 1
    log = result.stdout + result.stderr
    assert "on_bad_rows must be one of fail, skip, quarantine, not 'drop'" in log
    assert "Traceback" not in log
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "tiny_model"]


@pytest.mark.parametrize("suffix", ["feather", "xlsx", "txt", "tsv.gz"])
def test_scores_every_format_ingest_reads(tiny_model, tmp_path, suffix):
    rows = pd.DataFrame({"id": range(12), "x": np.arange(12.0) / 2})
    src, out = tmp_path / f"in.{suffix}", tmp_path / "scored.feather"
    {
        "feather": lambda: rows.to_feather(src),
        "xlsx": lambda: rows.to_excel(src, index=False),
        "txt": lambda: rows.to_csv(src, sep=";", index=False),
        "tsv.gz": lambda: rows.to_csv(src, sep="\t", index=False),
    }[suffix]()
    summary = batch.predict_file(predict_cfg(model=tiny_model, input=src, output=out, chunk_size=5))
    assert (summary.rows_read, summary.rows_scored) == (12, 12)
    scored = pd.read_feather(out)
    assert scored["id"].tolist() == list(range(12))
    assert np.allclose(scored["prediction"], 2 * scored["x"])


def test_output_format_without_a_writer_fails_before_any_output(tiny_model, tmp_path):
    src, out = tmp_path / "in.csv", tmp_path / "scored.xlsx"
    tiny_rows(src)
    with pytest.raises(ConfigError, match=r"excel format has no 'append'.*formats\.excel\.append"):
        batch.predict_file(predict_cfg(model=tiny_model, input=src, output=out))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "tiny_model"]


@needs_shared_data
@pytest.mark.parametrize(
    ("source", "target", "n_jobs"),
    [
        ("csv", "csv", 2),
        ("parquet", "parquet", 2),
        ("jsonl", "jsonl", 2),
        ("parquet", "parquet", 1),
        ("csv", "parquet", 2),
        ("json", "json", 2),
    ],
)
def test_chunked_scoring_matches_whole_frame_scoring(
    adult_run, rows, tmp_path, source, target, n_jobs
):
    src, out = tmp_path / f"in.{source}", tmp_path / f"scored.{target}"
    WRITE[source](rows, src)
    cfg = predict_cfg(model=adult_run, input=src, output=out, chunk_size=1000, n_jobs=n_jobs)
    summary = batch.predict_file(cfg)
    assert (summary.rows_read, summary.rows_scored, summary.rows_rejected) == (5000, 5000, 0)
    assert summary.rejects is None and not (tmp_path / f"scored.rejects.{target}").exists()
    assert leftovers(tmp_path) == []

    scored = READ[target](out)
    expected = load_model(adult_run).score(rows)
    assert scored["prediction"].tolist() == expected["prediction"].tolist()
    proba = scored[["proba_<=50K", "proba_>50K"]].to_numpy()
    if target in ("csv", "parquet"):  # full precision in the file
        assert np.array_equal(proba, expected[["proba_<=50K", "proba_>50K"]].to_numpy())
    else:  # pandas writes JSON numbers with 10 significant digits
        assert np.allclose(proba, expected[["proba_<=50K", "proba_>50K"]], rtol=1e-9)
    assert scored["age"].tolist() == rows["age"].tolist()  # input kept, order kept


@needs_shared_data
def test_bad_rows_are_rejected_with_reasons_and_counted(adult_run, rows, tmp_path, caplog):
    src, out = tmp_path / "in.csv", tmp_path / "scored.parquet"
    bad = bad_rows(rows)
    bad.to_csv(src, index=False)
    caplog.set_level(logging.INFO, logger="automl")
    summary = batch.predict_file(
        predict_cfg(model=adult_run, input=src, output=out, chunk_size=1000)
    )

    assert (summary.rows_read, summary.rows_scored, summary.rows_rejected) == (5000, 4996, 4)
    assert summary.rejects == tmp_path / "scored.rejects.parquet"
    rejects = pd.read_parquet(summary.rejects)
    assert rejects["row"].tolist() == [10, 11, 2500, 4999]
    why = dict(zip(rejects["row"], rejects["reason"]))
    assert why[10].startswith("age: wrong type")
    assert "age: failed check" in why[11] and "sex: value not in the allowed set" in why[11]
    assert why[2500].startswith("sex: value not in the allowed set")
    assert why[4999] == "education: missing value not allowed"
    assert rejects.loc[rejects["row"] == 10, "age"].item() == "old"  # the value as read

    good = ~bad.index.isin([10, 11, 2500, 4999])
    scored = pd.read_parquet(out)
    expected = load_model(adult_run).score(rows[good])
    assert scored["prediction"].tolist() == expected["prediction"].tolist()
    assert np.array_equal(scored["proba_>50K"], expected["proba_>50K"])
    assert summary.reasons["sex: value not in the allowed set (['Female', 'Male'])"] == 2
    log = caplog.text
    assert "4 rows break the contract" in log and "4996 scored" in log and "4 rejected" in log
    assert leftovers(tmp_path) == []

    # a clean rerun removes the earlier run's rejects file: it would describe other rows
    rows.to_csv(src, index=False)
    again = batch.predict_file(predict_cfg(model=adult_run, input=src, output=out))
    assert again.rows_rejected == 0 and not summary.rejects.exists()


@needs_shared_data
def test_on_bad_rows_fail_stops_with_no_output(adult_run, rows, tmp_path):
    src, out = tmp_path / "in.csv", tmp_path / "scored.csv"
    bad_rows(rows).to_csv(src, index=False)
    cfg = predict_cfg(model=adult_run, input=src, output=out, chunk_size=1000, on_bad_rows="fail")
    with pytest.raises(ContractError, match=r"column 'age': wrong type.*at rows \[10\]"):
        batch.predict_file(cfg)
    assert not out.exists() and not (tmp_path / "scored.rejects.csv").exists()
    assert leftovers(tmp_path) == []


@needs_shared_data
def test_json_lines_bad_value_rejects_only_its_row(adult_run, rows, tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "scored.jsonl"
    WRITE["jsonl"](bad_rows(rows), src)
    summary = batch.predict_file(
        predict_cfg(model=adult_run, input=src, output=out, chunk_size=1000)
    )
    assert summary.rows_rejected == 4


@needs_shared_data
def test_unparsable_later_chunk_leaves_no_output(adult_run, rows, tmp_path):
    src, out = tmp_path / "in.csv", tmp_path / "scored.csv"
    lines = rows.to_csv(index=False).splitlines()
    lines[3500] += ",1,2,3"  # a ragged row in the fourth chunk
    src.write_text("\n".join(lines) + "\n")
    cfg = predict_cfg(model=adult_run, input=src, output=out, chunk_size=1000)
    with pytest.raises(DataError, match=r"cannot read .*in\.csv' after its first 3000 rows"):
        batch.predict_file(cfg)
    assert not out.exists() and leftovers(tmp_path) == []


@needs_shared_data
def test_writer_failure_midway_leaves_no_output(adult_run, rows, tmp_path, monkeypatch):
    src, out = tmp_path / "in.csv", tmp_path / "scored.parquet"
    bad_rows(rows).to_csv(src, index=False)  # rejects are being written too
    real_write, calls = batch.StagedFile.write, []

    def failing_write(self, frame):
        calls.append(self.path.name)
        if calls.count("scored.parquet") == 3:
            raise OSError("No space left on device")
        real_write(self, frame)

    monkeypatch.setattr(batch.StagedFile, "write", failing_write)
    with pytest.raises(OSError, match="No space left"):
        batch.predict_file(predict_cfg(model=adult_run, input=src, output=out, chunk_size=1000))
    assert "scored.rejects.parquet" in calls  # the rejects file had been started
    assert list(tmp_path.iterdir()) == [src]


@needs_shared_data
def test_at_most_n_jobs_plus_one_chunks_in_memory(adult_run, rows, tmp_path, monkeypatch):
    src, out = tmp_path / "in.parquet", tmp_path / "scored.parquet"
    rows.to_parquet(src, index=False)
    alive, peak = [0], [0]
    real_read, real_write = batch.read_chunks, batch.Writer.write

    def counting_read(*args):
        for chunk in real_read(*args):
            alive[0] += 1
            peak[0] = max(peak[0], alive[0])
            yield chunk

    def counting_write(self, chunk):
        real_write(self, chunk)
        alive[0] -= 1

    monkeypatch.setattr(batch, "read_chunks", counting_read)
    monkeypatch.setattr(batch.Writer, "write", counting_write)
    cfg = predict_cfg(model=adult_run, input=src, output=out, chunk_size=250, n_jobs=2)
    assert batch.predict_file(cfg).rows_scored == 5000
    assert peak[0] == 3


@needs_shared_data
def test_cli_rejects_bad_rows_and_reports_counts(adult_run, rows, tmp_path):
    src, out, rejects = tmp_path / "in.csv", tmp_path / "scored.csv", tmp_path / "bad.jsonl"
    bad_rows(rows).to_csv(src, index=False)
    result = run_cli(
        "automl.predict",
        f"model={adult_run}",
        f"input={src}",
        f"output={out}",
        f"rejects={rejects}",
        "chunk_size=1000",
    )
    assert result.returncode == 0, result.stderr
    log = result.stdout + result.stderr
    assert "read 5000 rows" in log and "4996 scored" in log and "4 rejected" in log
    assert "%|" not in result.stderr  # no progress bar when stderr is not a terminal
    assert len(pd.read_csv(out)) == 4996
    assert pd.read_json(rejects, lines=True)["row"].tolist() == [10, 11, 2500, 4999]


@needs_shared_data
def test_cli_missing_column_fails_before_any_output(adult_run, rows, tmp_path):
    src, out = tmp_path / "in.parquet", tmp_path / "scored.parquet"
    rows.drop(columns="age").to_parquet(src, index=False)
    result = run_cli(
        "automl.predict", f"model={adult_run}", f"input={src}", f"output={out}", "chunk_size=1000"
    )
    assert result.returncode != 0
    assert "missing required column(s): age" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == [src]
