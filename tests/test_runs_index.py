"""The runs index (automl/services/runs.py) over 2,000 run folders: copies of a real run
of the dashboard world with varied metrics, projects and unfinished runs. A query after
the first scan only walks the folders (timings are printed, never asserted)."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from automl.services.runs import MISSING, RunIndex, config_diff

N = 2000
UNFINISHED = 20  # every 100th run has no metrics.json


def real_run(world: dict) -> Path:
    """The world's first run (alpha, breast_cancer, LightGBM, with plots)."""
    return next((world["out"] / "runs").glob("*/*_breast_cancer_lgbm"))


def clone(source: Path, out: Path, n: int) -> list[Path]:
    """``n`` run folders like ``source`` (files hard-linked; metrics.json and, for every
    4th, manifest.json rewritten): auc = i / n, every 4th of project beta."""
    metrics = json.loads((source / "metrics.json").read_text())
    manifest = json.loads((source / "model" / "manifest.json").read_text())
    made = []
    for i in range(n):
        day = f"2026-01-{1 + i % 28:02d}"
        folder = out / "runs" / day / f"{i % 24:02d}-00-{i % 60:02d}-{i:06d}_breast_cancer_lgbm"
        shutil.copytree(
            source,
            folder,
            copy_function=os.link,
            ignore=shutil.ignore_patterns("pipeline.joblib", "profile.json"),
        )
        (folder / "metrics.json").unlink()
        if i % 100 != 99:
            (folder / "metrics.json").write_text(json.dumps(dict(metrics, auc=i / n)))
        if i % 4 == 3:
            (folder / "model" / "manifest.json").unlink()
            (folder / "model" / "manifest.json").write_text(
                json.dumps(dict(manifest, project="beta"))
            )
        made.append(folder)
    return made


@pytest.fixture(scope="module")
def many(dashboard_world, tmp_path_factory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("many-runs")
    started = time.perf_counter()
    folders = clone(real_run(dashboard_world), out, N)
    print(f"\n{N} run folders made in {time.perf_counter() - started:.1f}s")
    return out, folders


def index_of(out: Path, refresh: float = 0.0) -> RunIndex:
    return RunIndex([out / "runs", out / "sweeps"], refresh, warm=False)


@pytest.mark.slow  # ~65 s to make 2,000 run folders
def test_2000_runs_are_indexed_then_queried_from_the_cache(many):
    out, folders = many
    index = index_of(out)
    started = time.perf_counter()
    rows, total = index.query(size=50)
    first = time.perf_counter() - started
    started = time.perf_counter()
    rows, total = index.query(sort="auc", descending=True, page=1, size=50)
    again = time.perf_counter() - started
    index.refresh_seconds = 3600
    started = time.perf_counter()
    rows, total = index.query(sort="auc", descending=True, page=1, size=50)
    cached = time.perf_counter() - started
    print(
        f"first scan and query: {first * 1000:.0f} ms; a query with a rescan: "
        f"{again * 1000:.1f} ms; without one: {cached * 1000:.1f} ms"
    )
    assert total == N
    expected_best = max(i for i in range(N) if i % 100 != 99) / N
    assert rows[0].metrics["auc"] == expected_best and rows[0].status == "complete"
    assert [r.metrics["auc"] for r in rows] == sorted(
        (r.metrics["auc"] for r in rows), reverse=True
    )
    # the unfinished runs come last whichever way the column is sorted
    for descending in (True, False):
        last, _ = index.query(sort="auc", descending=descending, page=40, size=50)
        assert [r.status for r in last[-UNFINISHED:]] == ["incomplete"] * UNFINISHED
    ascending, _ = index.query(sort="auc", descending=False, page=3, size=50)
    complete = sorted(i for i in range(N) if i % 100 != 99)
    assert [r.metrics["auc"] for r in ascending] == [i / N for i in complete[100:150]]
    # a rescan of unchanged folders re-reads nothing: the very same summaries come back
    index.refresh_seconds = 0
    before = {r.id: r for r in index.runs()}
    index.refresh(force=True)
    started = time.perf_counter()
    index.refresh(force=True)
    print(f"rescan of {N} unchanged runs: {(time.perf_counter() - started) * 1000:.1f} ms")
    assert all(before[r.id] is r for r in index.runs())


def test_filters_text_and_facets(many):
    out, _ = many
    index = index_of(out, refresh=3600)
    alpha, total = index.query(projects=["alpha"], size=N)
    assert total == N - N // 4 and {r.project for r in alpha} == {"alpha"}
    assert index.query(projects=["beta"], size=1)[1] == N // 4
    assert index.query(projects=[], size=1)[1] == 0
    assert index.query(projects=["gamma"], size=1)[1] == 0
    unfinished, total = index.query(status="incomplete", size=N)
    assert total == UNFINISHED and all(not r.metrics and r.duration is None for r in unfinished)
    assert unfinished[0].family == "lgbm" and unfinished[0].project in ("alpha", "beta")
    assert index.query(text="000123_BREAST", size=5)[1] == 1
    assert index.query(dataset="breast_cancer", family="rf", size=5)[1] == 0
    assert index.facets(["alpha"]) == {
        "project": ["alpha"],
        "dataset": ["breast_cancer"],
        "family": ["lgbm"],
        "status": ["complete"],
    }
    assert index.facets(None)["project"] == ["alpha", "beta"]
    assert index.facets(["beta"])["status"] == ["complete", "incomplete"]
    row = index.query(size=1, sort="id", descending=False)[0][0]
    assert row.id == "runs/2026-01-01/00-00-00-000000_breast_cancer_lgbm"
    assert row.started == "2026-01-01 00:00:00" and row.n_trials == 2 and row.time_budget is None
    assert row.duration is not None and "train_seconds" not in row.metrics


def test_changes_show_after_refresh_seconds(many, tmp_path):
    out, folders = many
    small = tmp_path / "outputs"
    for name in ("a", "b"):
        shutil.copytree(folders[0], small / "runs" / "2026-02-01" / f"10-00-00-00000{name}_x_lgbm")
    index = RunIndex([small / "runs"], refresh_seconds=3600, warm=False)
    assert index.query()[1] == 2
    run_id = "runs/2026-02-01/10-00-00-00000a_x_lgbm"
    run = small / run_id
    time.sleep(0.05)  # past the file system's clock tick
    (run / "metrics.json").unlink()
    (run / "metrics.json").write_text("")  # training has just opened it
    shutil.copytree(folders[0], small / "runs" / "2026-02-02" / "11-00-00-000000_x_lgbm")
    assert index.query()[1] == 2  # not before refresh_seconds
    index.refresh(force=True)
    assert index.query()[1] == 3
    assert index.summary(run_id).status == "incomplete"
    # read half-written: read again once written, though the folder did not change
    (run / "metrics.json").write_text(json.dumps({"auc": 0.75, "train_seconds": 9.0}))
    index.refresh(force=True)
    assert index.summary(run_id).status == "complete"
    assert index.summary(run_id).metrics == {"auc": 0.75} and index.summary(run_id).duration == 9
    shutil.rmtree(run)
    index.refresh(force=True)
    assert index.summary(run_id) is None and index.query()[1] == 2


def test_details_plots_and_only_indexed_ids(dashboard_world):
    out = dashboard_world["out"]
    index = RunIndex([out / "runs", out / "sweeps"], warm=False)
    source = real_run(dashboard_world)
    run_id = source.relative_to(out).as_posix()
    details = index.get(run_id)
    assert details is not None and details.summary.project == "alpha"
    assert details.summary.task == "binary" and details.summary.family == "lgbm"
    assert "roc.png" in details.plots and details.table_rows["leaderboard"] == 2
    assert details.tables["leaderboard"][0]["family"] == "lgbm"
    assert isinstance(details.tables["leaderboard"][0]["value"], float)
    assert "model:\n  name: lgbm" in details.config and "test metrics" in details.log_tail
    assert index.plot(run_id, "roc.png") == source / "plots" / "roc.png"
    for name in ("../metrics.json", "../../model/manifest.json", "/etc/passwd", "roc", "x.png"):
        assert index.plot(run_id, name) is None, name
    for bad in (str(source), f"{run_id}/..", f"{run_id}/plots", "../runs", "runs", "", "/etc"):
        assert index.get(bad) is None, bad
    sweep = [r.id for r in index.runs() if r.id.startswith("sweeps/")]
    assert len(sweep) == 2 and all(index.summary(s).started for s in sweep)
    compared = index.compare([run_id, sweep[0], run_id, "nope"])
    assert [c.id for c in compared] == [run_id, sweep[0]]
    diff = dict(config_diff([c.config_tree() for c in compared]))
    assert diff["model.name"] == ["lgbm", "linear"]
    assert diff["registry.enabled"] == [True, False]
    assert "seed" not in diff and "dataset.name" not in diff


def test_config_diff_keeps_only_differences_and_marks_missing_keys():
    a = {"a": 1, "m": {"x": 1, "s": {"p": {"lo": 1}}, "same": [1]}, "l": [1, 2]}
    b = {"a": 1, "m": {"x": 2, "s": {"q": {"lo": 1}}, "same": [1]}, "l": [1, 3], "n": None}
    assert config_diff([a, b]) == [
        ("l", [[1, 2], [1, 3]]),
        ("m.s.p", [{"lo": 1}, MISSING]),
        ("m.s.q", [MISSING, {"lo": 1}]),
        ("m.x", [1, 2]),
        ("n", [MISSING, None]),
    ]
    assert config_diff([a, a, a]) == []


def test_the_tracker_copy_and_registered_folders_are_found(dashboard_world, tmp_path):
    source = real_run(dashboard_world)
    folder = tmp_path / "runs" / "2026-02-01" / source.name
    shutil.copytree(source, folder)
    link = {"run_id": "abc123", "uri": "sqlite:///x/mlflow.db", "experiment": "alpha.bc"}
    (folder / "tracking.json").write_text(json.dumps(link))
    index = RunIndex([tmp_path / "runs", tmp_path / "sweeps"], refresh_seconds=0, warm=False)
    run_id = f"runs/2026-02-01/{source.name}"
    assert index.get(run_id).mlflow == link
    assert index.id_of(str(folder.resolve())) == run_id  # as the registry records it
    assert index.id_of(str(tmp_path / "elsewhere")) is None
    assert index.id_of(str(tmp_path / "runs" / "2026-02-01" / "not-a-run")) is None
    assert index.get(f"runs/2026-02-01/{source.name}/../{source.name}") is None
