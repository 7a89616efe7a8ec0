"""Bundles (hashes, tampering, profile), the registry and model references end to end."""

from __future__ import annotations

import getpass
import json
import logging
import os
import pickle
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import FAST, SHARED_DATA, compose_train, needs_shared_data, run_cli

from automl import load_model
from automl.apps.registry import main as registry_cli
from automl.bundle.model import CHECKSUM, MANIFEST, PIPELINE, PROFILE, sha256
from automl.bundle.registry import INSERT_VERSION, SCHEMA_VERSION, Registry
from automl.errors import AutomlError
from automl.services.identity import AuthStore, default_url
from automl.services.registry import RegistryService
from automl.services.training import train

IRIS = ["dataset=iris", "model=linear", *FAST]


def registry() -> Registry:
    return Registry.default()


def train_iris(folder: Path) -> Path:
    train(compose_train(IRIS), folder / "run")
    return folder / "run"


@pytest.fixture
def iris_run(tmp_path) -> Path:
    """An iris run, registered in the default registry (an SQLite file)."""
    return train_iris(tmp_path)


@pytest.fixture
def on_store(store_url, monkeypatch) -> str:
    """The registry's database for this test (the default registry's, so training, the
    CLI and child processes use it too): ``store_url``, SQLite then PostgreSQL."""
    monkeypatch.setenv("AUTOML_REGISTRY_URI", store_url)
    return store_url


@pytest.fixture
def stored_run(on_store, tmp_path) -> Path:
    """An iris run, registered in the registry at ``on_store``."""
    return train_iris(tmp_path)


def whole_bundle(folder: Path) -> Path:
    """A small bundle the registry accepts (nothing in it is loaded)."""
    folder.mkdir()
    (folder / PIPELINE).write_bytes(b"not loaded here")
    (folder / MANIFEST).write_text(json.dumps({"files": {PIPELINE: sha256(folder / PIPELINE)}}))
    (folder / CHECKSUM).write_text(sha256(folder / MANIFEST))
    return folder


def test_run_registers_a_version_with_a_copy_of_its_bundle(stored_run):
    [row] = registry().versions("default.iris").to_dict("records")
    assert row["version"] == 1 and row["family"] == "linear" and row["accuracy"] > 0.8
    stored = registry().resolve("default.iris/1")
    assert stored != stored_run / "model" and (stored / MANIFEST).is_file()
    assert load_model("default.iris").classes == load_model(stored_run).classes


def test_references(stored_run, train_config):
    train(train_config(IRIS + ["seed=7"]), stored_run.parent / "again")
    reg = registry()
    assert reg.version_of("default.iris") == ("default.iris", 2)
    reg.set_alias("default.iris", "production", 1)
    assert reg.version_of("default.iris@production") == ("default.iris", 1)
    reg.set_alias("default.iris", "production", 2)  # moved
    assert reg.version_of("default.iris@production") == ("default.iris", 2)
    for ref, message in [
        ("default.nope", "no model 'default.nope'.*default.iris"),
        ("default.iris/9", r"no version 9 \(versions: \[1, 2\]\)"),
        ("default.iris@staging", r"no alias 'staging' \(aliases: \['production'\]\)"),
        ("a b@@c", "neither a bundle"),
    ]:
        with pytest.raises(AutomlError, match=message):
            load_model(ref)


def test_cli_promote_show_list_delete(stored_run, capsys, train_config):
    train(train_config(IRIS + ["seed=7"]), stored_run.parent / "again")
    assert registry_cli(["promote", "default.iris/1", "production"]) == 0
    assert registry_cli(["promote", "default.iris", "staging"]) == 0
    assert registry_cli(["list"]) == 0
    out = capsys.readouterr().out
    assert "default.iris" in out and "production=1" in out and "staging=2" in out
    assert registry_cli(["delete", "default.iris/1"]) == 1  # aliased
    assert "aliased as ['production']" in capsys.readouterr().err
    stored = registry().resolve("default.iris/1")
    assert registry_cli(["delete", "default.iris/1", "--force"]) == 0
    assert not stored.exists()
    assert registry_cli(["show", "default.iris"]) == 0
    assert "staging" in capsys.readouterr().out
    # no server set up: no roles to check, but every change is in the audit log, as the OS user
    entries = AuthStore(default_url()).audit_log("default")
    assert [(e["action"], e["actor"]) for e in entries] == [
        ("delete_version", getpass.getuser()),
        ("promote", getpass.getuser()),
        ("promote", getpass.getuser()),
    ]
    assert entries[0]["details"] == {"version": 1, "force": True}
    assert entries[2]["details"] == {"alias": "production", "version": 1, "previous": None}


def test_registry_changes_need_the_editor_role_and_are_audited(iris_run, tmp_path, capsys):
    db = f"sqlite:///{tmp_path}/auth.db"
    store = AuthStore(db)
    for user, project, role in [("ed", "default", "editor"), ("vi", "default", "viewer")]:
        store.add_user(user, "ops")
        store.add_project(project, "ops")
        store.grant(user, project, role, "ops")
    store.add_user("default.x", "ops")  # a dotted user name: its grants stay out of the log
    store.add_project("p3", "ops")
    store.grant("default.x", "p3", "viewer", "ops")
    cli = ["--auth-db", db]
    for actor in ("vi", "nobody"):
        assert registry_cli([*cli, "--actor", actor, "promote", "default.iris", "prod"]) == 1
        err = capsys.readouterr().err
        assert f"no editor access to project 'default' for user '{actor}'" in err
    assert registry_cli([*cli, "--actor", "ed", "promote", "default.iris", "prod"]) == 0
    assert registry_cli([*cli, "--actor", "ed", "unalias", "default.iris", "prod"]) == 0
    assert registry_cli([*cli, "--actor", "vi", "delete", "default.iris/1"]) == 1
    assert registry().versions("default.iris")["aliases"].tolist() == [""]
    log = store.audit_log("default", last=3)
    assert [(e["actor"], e["action"], e["target"]) for e in log] == [
        ("ed", "unalias", "default.iris"),
        ("ed", "promote", "default.iris"),
        ("ops", "grant", "vi@default"),
    ]
    assert log[0]["details"] == {"alias": "prod", "version": 1}
    assert store.audit_log("defaul_") == [] and store.audit_log("defaul") == []
    assert store.audit_log("DEFAULT") == [] and store.audit_log("P3") == []  # LIKE ignores case
    assert "default.x@p3" in [e["target"] for e in store.audit_log("p3")]
    # a project the store does not manage has no roles to check; the change is audited
    service = RegistryService(registry(), AuthStore(f"sqlite:///{tmp_path}/empty.db"))
    assert service.promote("default.iris/1", "prod", "anyone") == ("default.iris", 1)
    assert service.identity.audit_log("default")[0]["actor"] == "anyone"
    with pytest.raises(AutomlError, match="need an identity store"):
        RegistryService(registry()).unalias("default.iris", "prod", "anyone")


def test_compare_filters_sorts_pages_and_exports_2000_runs(on_store, tmp_path):
    reg = Registry(on_store, tmp_path / "models")
    bundle = whole_bundle(tmp_path / "bundle")
    rng = np.random.default_rng(0)
    aucs = rng.uniform(0.8, 0.95, 2000)
    with reg.connect(write=True) as db:  # 2,000 runs, as many training jobs would leave
        db.execute(
            INSERT_VERSION,
            [
                {
                    "name": "p.adult",
                    "version": i + 1,
                    "bundle": str(bundle),
                    "run_dir": None,
                    "project": "p",
                    "dataset": "adult",
                    "family": ["lgbm", "xgb"][i % 2],
                    "task": "binary",
                    "metrics": json.dumps({"auc": auc, "log_loss": 1 - auc}),
                    "created_at": "2026-11-28",
                }
                for i, auc in enumerate(aucs)
            ],
        )
    reg.register(
        "p.adult",
        bundle,
        {"dataset": "adult", "model_family": "rf", "metrics": {"auc": 0.5}},
        tmp_path,
    )
    page = reg.compare(dataset="adult", metric="auc", family="lgbm", limit=20, offset=20)
    lgbm = np.sort(aucs[::2])[::-1]
    assert np.allclose(page["auc"], lgbm[20:40])
    high = reg.compare(dataset="adult", metric="auc", min_value=0.9, limit=None)
    assert len(high) == int((aucs >= 0.9).sum())
    out = tmp_path / "runs.csv"
    assert (
        registry_cli(  # the default registry: on_store's
            [
                "compare",
                "--dataset",
                "adult",
                "--metric",
                "log_loss",
                "--ascending",
                "--page",
                "2",
                "--csv",
                str(out),
            ]
        )
        == 0
    )
    exported = pd.read_csv(out)
    assert len(exported) == 2000 and exported["log_loss"].is_monotonic_increasing


def test_two_training_processes_register_at_once(on_store):
    env = dict(os.environ)
    command = [sys.executable, "-m", "automl", *IRIS, "model=linear"]
    procs = [
        subprocess.Popen(
            command + [f"seed={s}"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for s in (1, 2)
    ]
    for proc in procs:
        assert proc.wait(timeout=300) == 0, proc.stderr.read()
    versions = registry().versions("default.iris")
    assert sorted(versions["version"]) == [1, 2]
    assert len(set(versions["run_dir"])) == 2
    for version in (1, 2):
        assert load_model(f"default.iris/{version}").task == "multiclass"


def test_registering_from_two_processes_in_a_tight_loop(on_store, tmp_path, stored_run):
    script = (
        "import sys, json; from pathlib import Path; from automl.bundle.registry import Registry\n"
        "reg = Registry(sys.argv[1], sys.argv[2]); b = Path(sys.argv[3])\n"
        "m = json.loads((b / 'manifest.json').read_text())\n"
        "print([reg.register('race', b, m, b) for _ in range(15)])\n"
    )
    args = [on_store, str(tmp_path / "models"), str(stored_run / "model")]
    procs = [
        subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    got = [v for p in procs for v in json.loads(p.communicate(timeout=300)[0])]
    assert sorted(got) == list(range(1, 31))
    reg = Registry(on_store, tmp_path / "models")
    for version in (1, 15, 30):
        assert load_model(f"race/{version}", registry=reg).classes
    assert not list((tmp_path / "models" / "race").glob(".incoming-*"))


def test_processes_opening_a_new_database_at_once_make_its_schema_once(store_url, tmp_path):
    """Four processes, ready to start together, each register into a database that has no
    tables yet: the schema is made once, under the write lock, and no number repeats."""
    bundle = whole_bundle(tmp_path / "bundle")
    go = tmp_path / "go"
    script = (
        "import sys, time; from pathlib import Path; from automl.bundle.registry import Registry\n"
        "reg = Registry(sys.argv[1], sys.argv[2]); b = Path(sys.argv[3]); go = Path(sys.argv[4])\n"
        "Path(sys.argv[5]).touch()\n"
        "while not go.exists(): time.sleep(0.005)\n"
        "print([reg.register('fresh', b, {}, b) for _ in range(3)])\n"
    )
    common = [store_url, str(tmp_path / "models"), str(bundle), str(go)]
    ready = [tmp_path / f"ready{i}" for i in range(4)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, *common, str(flag)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for flag in ready
    ]
    deadline = time.monotonic() + 120
    while not all(flag.exists() for flag in ready) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outputs]
    got = [v for out, _ in outputs for v in json.loads(out)]
    assert sorted(got) == list(range(1, 13))
    assert Registry(store_url, tmp_path / "models").models()["latest"].tolist() == [12]


def test_registered_versions_are_refused_when_tampered_with_or_unsigned(stored_run, on_store):
    reg = registry()
    stored = reg.resolve("default.iris/1")
    signer = Registry(on_store, reg.store, signing_key="a-key")
    with pytest.raises(AutomlError, match="'default.iris/1' refused: it is not signed"):
        signer.resolve("default.iris")
    assert signer.sign() == ["default.iris/1"] and signer.sign() == []
    assert signer.resolve("default.iris") == stored
    pipeline = (stored / PIPELINE).read_bytes()
    (stored / PIPELINE).write_bytes(pipeline[:-100])
    with pytest.raises(AutomlError, match=r"'default.iris/1'.*does not match.*registered"):
        load_model("default.iris")
    manifest = json.loads((stored_run / "model" / MANIFEST).read_text())
    reg.delete("default.iris", 1)
    assert reg.register("default.iris", stored_run / "model", manifest, stored_run) == 2
    with pytest.raises(AutomlError, match=r"no version 1 \(versions: \[2\]\)"):
        reg.version_of("default.iris/1")


def test_a_registry_db_from_before_bundle_hashes_still_works(tmp_path, caplog):
    """A registry.db path as older versions wrote it: its versions and aliases as they
    were, each intact bundle trusted as it is now, version numbers carried on."""
    old = tmp_path / "registry" / "registry.db"
    old.parent.mkdir()
    bundles = [whole_bundle(tmp_path / name) for name in ("b1", "b2")]
    with sqlite3.connect(old) as db:
        db.executescript(
            "CREATE TABLE versions (name TEXT NOT NULL, version INTEGER NOT NULL, "
            "bundle TEXT NOT NULL, run_dir TEXT, project TEXT, dataset TEXT, family TEXT, "
            "task TEXT, metrics TEXT NOT NULL, created_at TEXT NOT NULL, "
            "PRIMARY KEY (name, version));"
            "CREATE INDEX versions_dataset ON versions (dataset);"
            "CREATE TABLE aliases (name TEXT NOT NULL, alias TEXT NOT NULL, "
            "version INTEGER NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (name, alias));"
        )
        db.executemany(
            "INSERT INTO versions VALUES (?, ?, ?, NULL, 'p', 'iris', 'linear', "
            "'multiclass', '{\"accuracy\": 0.9}', '2025-01-01')",
            [("p.iris", 1, str(bundles[0])), ("p.iris", 3, str(bundles[1]))],
        )
        db.execute("INSERT INTO aliases VALUES ('p.iris', 'production', 3, '2025-01-01')")
    db.close()
    (bundles[0] / PIPELINE).write_bytes(b"changed since")  # not trusted by the upgrade
    with caplog.at_level(logging.WARNING):
        reg = Registry(str(old), tmp_path / "models")  # a plain path, as the config gives
        assert reg.resolve("p.iris@production") == bundles[1]
    assert "p.iris/1 not trusted" in caplog.text
    with pytest.raises(AutomlError, match=r"'p.iris/1'.*no recorded hash"):
        reg.resolve("p.iris/1")
    assert reg.versions("p.iris")["accuracy"].tolist() == [0.9, 0.9]
    assert reg.register("p.iris", bundles[1], {}, tmp_path) == 4
    with sqlite3.connect(old) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_tampered_or_truncated_bundles_are_refused(iris_run):
    bundle = iris_run / "model"
    pipeline = bundle / PIPELINE
    original = pipeline.read_bytes()
    pipeline.write_bytes(original[:-100])
    with pytest.raises(AutomlError, match="damaged: 'pipeline.joblib' is missing or does not"):
        load_model(iris_run)
    pipeline.write_bytes(original[:50] + b"X" + original[51:])
    with pytest.raises(AutomlError, match="damaged"):
        load_model(iris_run)
    pipeline.write_bytes(original)
    manifest = bundle / MANIFEST
    text = manifest.read_text()
    manifest.write_text(text.replace('"multiclass"', '"binary"'))
    with pytest.raises(AutomlError, match="'manifest.json' does not match its SHA-256"):
        load_model(iris_run)
    manifest.write_text(text[: len(text) // 2])
    with pytest.raises(AutomlError, match="edited or truncated"):
        load_model(iris_run)
    manifest.write_text(text)
    (bundle / CHECKSUM).unlink()
    with pytest.raises(AutomlError, match="'manifest.sha256' is missing"):
        load_model(iris_run)


def test_version_skew_warns_naming_the_library(iris_run, caplog):
    bundle = iris_run / "model"
    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest["versions"]["scikit-learn"] = "0.1.0"
    (bundle / MANIFEST).write_text(json.dumps(manifest))
    (bundle / CHECKSUM).write_text(sha256(bundle / MANIFEST))
    with caplog.at_level(logging.WARNING):
        load_model(iris_run)
    assert "other library versions" in caplog.text and "scikit-learn" in caplog.text


def test_crash_while_saving_leaves_no_bundle(iris_run, tmp_path):
    model = load_model(iris_run)
    model.pipeline = lambda: None  # joblib cannot pickle a lambda
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        model.save(tmp_path / "new")
    assert not (tmp_path / "new").exists() and not list(tmp_path.glob(".new.*"))


def test_reference_profile_is_in_the_bundle(iris_run, train_config):
    model = load_model(iris_run)
    assert (iris_run / "model" / PROFILE).is_file()
    petal = model.profile["columns"]["petal length (cm)"]
    assert petal["kind"] == "numeric" and sum(petal["counts"]) == model.profile["rows"]
    bins = train_config().monitoring.profile.bins
    assert 0 < len(petal["edges"]) <= bins - 1 and petal["missing_rate"] == 0.0
    prediction = model.profile["prediction"]
    assert set(prediction["frequencies"]) <= set(model.classes)
    assert sum(prediction["mean_proba"].values()) == pytest.approx(1.0)


@needs_shared_data
def test_promote_and_score_by_alias_end_to_end(tmp_path, train_config):
    """Train adult twice, promote v2, score by alias; move the alias back, score again."""
    for seed in (1, 2):
        train(
            train_config(
                [
                    "dataset=adult",
                    "model=lgbm",
                    *FAST,
                    f"seed={seed}",
                    "search.n_trials=1",
                    "model.classifier.num_leaves=15",
                ]
            ),
            tmp_path / f"run{seed}",
        )
    rows = pd.read_csv(
        SHARED_DATA / "adult-test.csv", header=None, skipinitialspace=True, nrows=500
    )
    rows.columns = list(load_model("default.adult/1").contract.columns)
    rows.drop(columns="income").to_csv(tmp_path / "new.csv", index=False)
    expected = {v: load_model(f"default.adult/{v}").score(rows) for v in (1, 2)}
    assert not np.allclose(expected[1]["proba_>50K"], expected[2]["proba_>50K"])
    for version in (2, 1):
        assert registry_cli(["promote", f"default.adult/{version}", "production"]) == 0
        out = tmp_path / f"scored{version}.csv"
        result = run_cli(
            "automl.predict",
            "model=default.adult@production",
            f"input={tmp_path / 'new.csv'}",
            f"output={out}",
        )
        assert result.returncode == 0, result.stderr
        scored = pd.read_csv(out)
        assert np.allclose(scored["proba_>50K"], expected[version]["proba_>50K"])


@pytest.mark.parametrize("kind", ["memory", "file"])
def test_a_bundle_store_at_an_fsspec_url_is_read_by_every_registry_instance(
    iris_run, tmp_path, kind
):
    import fsspec

    store = "memory://registry-models" if kind == "memory" else (tmp_path / "urlstore").as_uri()
    remote = Registry(tmp_path / "remote.db", store, cache=tmp_path / "cache-a")
    manifest = json.loads((iris_run / "model" / MANIFEST).read_text())
    version = remote.register("team.iris", iris_run / "model", manifest, iris_run)
    remote.set_alias("team.iris", "production", version)
    expected = load_model(iris_run)
    features = expected.background.head(5)
    # another worker or machine: the same database and store, a cache of its own
    other = Registry(tmp_path / "remote.db", store, cache=tmp_path / "cache-b")
    loaded = other.load("team.iris@production")
    pd.testing.assert_frame_equal(loaded.score(features), expected.score(features))
    fetched = (tmp_path / "cache-b" / "team.iris").is_dir()  # kept by version and hash
    assert fetched == (kind == "memory")  # a file:// store is read in place
    # the stored copy changed after registration: a machine fetching it refuses it
    fs, root = fsspec.core.url_to_fs(store)
    [pipeline] = [p for p in fs.find(root) if p.endswith(PIPELINE)]
    fs.pipe_file(pipeline, fs.cat_file(pipeline) + b"tampered")
    third = Registry(tmp_path / "remote.db", store, cache=tmp_path / "cache-c")
    with pytest.raises(AutomlError, match="does not match the one registered"):
        third.load("team.iris/1")
    remote.remove_alias("team.iris", "production")
    remote.delete("team.iris", version)
    assert not [p for p in fs.find(root) if "team.iris" in p]  # its stored bundle is gone
