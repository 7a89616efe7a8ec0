"""``python -m automl.backup``: a snapshot of every store taken while a training job
registers versions and a real server serves and logs predictions, restored into empty
locations (SQLite files and folders; PostgreSQL databases), finds everything that existed
when it was taken; a changed archive, or a location that holds anything, is refused with
nothing written."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pandas as pd
import pytest
import sqlalchemy as sa
from helpers import FAST, ROOT, compose_train, run_cli, serve_process, set_up_team

from automl.bundle.registry import Registry
from automl.config import compose_config
from automl.errors import AutomlError, ConfigError
from automl.services import backup as backup_service
from automl.services.backup import PgTools, database
from automl.services.identity import AuthStore
from automl.serving.prediction_log import read_log

TEAM = {
    "projects": ["default"],
    "users": {"ada": {"roles": {"default": "viewer"}}, "eve": {"roles": {"default": "editor"}}},
}
ROW = {
    "sepal length (cm)": 5.1,
    "sepal width (cm)": 3.5,
    "petal length (cm)": 1.4,
    "petal width (cm)": 0.2,
}
MODEL = "default.iris"
TRAIN = ["dataset=iris", "model=linear", *(o for o in FAST if not o.startswith("tracking="))]


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


class Traffic(threading.Thread):
    """One-record predictions of default.iris@production, one after another, until stopped."""

    def __init__(self, url: str, key: str) -> None:
        super().__init__(daemon=True)
        self.url, self.key = url, key
        self.halt = threading.Event()
        self.answered = 0
        self.refused: list[int] = []

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=30) as client:
            while not self.halt.is_set():
                answer = client.post(f"/v1/models/{MODEL}@production/predict", json=ROW)
                if answer.status_code == 200:
                    self.answered += 1
                else:
                    self.refused.append(answer.status_code)
                time.sleep(0.02)

    def stop(self) -> None:
        self.halt.set()
        self.join(60)


class Stores:
    """Where one world's stores are: its registry, identity database and prediction log
    (SQLite files under ``root``, or one PostgreSQL database), and the overrides that say so."""

    def __init__(self, root: Path, database: str | None = None) -> None:
        self.root = root
        self.database = database
        self.overrides = [f"paths.output_dir={root}"]
        if database is None:
            self.registry = Registry(root / "registry" / "registry.db", root / "registry/models")
            self.auth = f"sqlite:///{root}/serving/auth.db"
            self.log = root / "serving" / "predictions.db"
        else:
            self.registry = Registry(database, root / "registry" / "models")
            self.auth, self.log = database, database
            self.overrides.append(f"registry.uri='{database}'")
        self.training = list(self.overrides)  # training has no server stores
        if database is not None:
            self.overrides += [f"auth.url='{database}'", f"prediction_log.store='{database}'"]

    def state(self) -> dict:
        """Versions, aliases and logged request ids now."""
        models = self.registry.models()
        logged = read_log(self.log, MODEL) if self.log_exists() else None
        return {
            "versions": set(self.registry.versions(MODEL)["version"].astype(int)),
            "aliases": {n: sorted(a.split()) for n, a in zip(models["name"], models["aliases"])},
            "requests": set() if logged is None else set(logged["request_id"]),
            "log": logged,
        }

    def log_exists(self) -> bool:
        return self.database is not None or Path(self.log).is_file()


def mlflow_runs(database: Path) -> dict[str, str]:
    """{run id: artifact URI} of an MLflow SQLite store."""
    with sqlite3.connect(database) as db:
        return dict(db.execute("SELECT run_uuid, artifact_uri FROM runs").fetchall())


def backup_while_running(live: Stores, tmp: Path, extra: list[str]) -> dict:
    """A first version (aliased), a team, a server with traffic, a training sweep that
    registers more versions; ``python -m automl.backup`` taken while both run. The archive,
    the state just before and just after it, and the keys."""
    from automl.services.training import train

    train(compose_train([*TRAIN, *extra, *live.training]), live.root / "first")
    live.registry.set_alias(MODEL, "production", 1)
    live.registry.set_alias(MODEL, "staging", 1)
    team = set_up_team(live.root, TEAM, live.database)
    serving = [*live.overrides, "prediction_log.flush_seconds=0.1"]
    serving.append(f"hydra.run.dir={live.root / 'serve'}")
    with serve_process(serving, tmp / "serve.log") as (url, _):
        traffic = Traffic(url, team["keys"]["ada"])
        traffic.start()
        sweep = [sys.executable, "-m", "automl", "-m", "seed=1,2,3,4,5,6", *TRAIN, *extra]
        sweep += [*live.training, f"hydra.sweep.dir={live.root / 'sweep'}"]
        with open(tmp / "train.log", "w") as out:
            training = subprocess.Popen(sweep, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: len(live.registry.versions(MODEL)) >= 2, "a second version")
            wait_for(lambda: len(live.state()["requests"]) >= 10, "logged predictions")
            before = live.state()
            started = time.monotonic()
            done = run_cli(
                "automl.backup",
                *live.overrides,
                f"to={tmp / 'backups'}",
                f"hydra.run.dir={tmp / 'backup-run'}",
                *(["stores=[registry,auth,prediction_log]"] if live.database else []),
            )
            seconds = time.monotonic() - started
            assert done.returncode == 0, done.stdout + done.stderr
            assert training.poll() is None, "the training job ended before the backup did"
            assert traffic.is_alive() and not traffic.refused
            after = live.state()
        finally:
            traffic.stop()
            training.terminate()
            training.wait(60)
    assert after["versions"] > before["versions"] or after["requests"] > before["requests"]
    print(f"backup took {seconds:.1f}s; versions {before['versions']} -> {after['versions']}")
    (archive,) = (tmp / "backups").glob("automl-backup-*.tar")
    return {"archive": archive, "before": before, "after": after, "keys": team["keys"]}


def check_restored(restored: Stores, taken: dict) -> None:
    """Every version, alias, key and logged prediction that existed when the backup was
    taken is in the restored stores (and nothing that did not exist after it)."""
    before, after, now = taken["before"], taken["after"], restored.state()
    assert before["versions"] <= now["versions"] <= after["versions"]
    assert now["aliases"] == before["aliases"] == {MODEL: ["production=1", "staging=1"]}
    for version in now["versions"]:
        bundle = restored.registry.resolve(f"{MODEL}/{version}")  # its hashes are checked
        assert bundle.is_relative_to(restored.root / "registry" / "models")
        model = restored.registry.load(f"{MODEL}/{version}")
        assert len(model.predict(pd.DataFrame([ROW]))) == 1
    auth = AuthStore(restored.auth)
    for user, key in taken["keys"].items():
        caller = auth.caller(key)
        assert caller is not None and caller.user == user
        assert caller.can("default", "viewer")
    assert before["requests"] <= now["requests"] <= after["requests"]
    old = before["log"].set_index("request_id").sort_index()
    new = now["log"].set_index("request_id").loc[old.index].sort_index()
    assert new[["version", "prediction"]].equals(old[["version", "prediction"]])
    assert (new["ts"] == old["ts"]).all()


@pytest.fixture(scope="module")
def live_sqlite(tmp_path_factory) -> dict:
    """The SQLite world (MLflow tracking too) backed up while it runs."""
    tmp = tmp_path_factory.mktemp("backup-sqlite")
    live = Stores(tmp / "live")
    taken = backup_while_running(live, tmp, [])
    return {**taken, "tmp": tmp, "live": live}


def restore(archive: Path, where: list[str], run_dir: Path) -> subprocess.CompletedProcess:
    return run_cli("automl.backup", f"restore={archive}", *where, f"hydra.run.dir={run_dir}")


def test_a_backup_taken_while_training_and_serving_restores_everything(live_sqlite):
    tmp, archive = live_sqlite["tmp"], live_sqlite["archive"]
    assert archive.stat().st_mode & 0o777 == 0o600  # every store in one file: its owner's
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        names = set(tar.getnames())
    assert manifest["automl_version"] and manifest["created"]
    stores = manifest["stores"]
    assert {part["kind"] for store in stores.values() for part in store.values()} == {
        "sqlite",
        "folder",
    }
    assert "registry/database.sqlite" in names and "tracking/database.sqlite" in names
    listed = {f for store in stores.values() for p in store.values() for f in p["files"]}
    assert names == listed | {"manifest.json"}

    new = tmp / "restored"
    done = restore(archive, [f"paths.output_dir={new}"], tmp / "restore-run")
    assert done.returncode == 0, done.stdout + done.stderr
    check_restored(Stores(new), live_sqlite)
    # the tracking store: the runs there before, their artifacts under the new folder
    old_runs = mlflow_runs(live_sqlite["live"].root / "mlflow.db")
    runs = mlflow_runs(new / "mlflow.db")
    assert runs and set(runs) <= set(old_runs)
    artifacts = (new / "mlflow-artifacts").as_uri() + "/"
    assert all(uri.startswith(artifacts) for uri in runs.values())
    assert any((Path(urlparse(uri).path) / "metrics.json").is_file() for uri in runs.values())


def test_a_changed_archive_is_refused_naming_the_file_and_nothing_is_written(live_sqlite):
    tmp = live_sqlite["tmp"]
    changed = tmp / "changed.tar"
    data = bytearray(live_sqlite["archive"].read_bytes())
    with tarfile.open(live_sqlite["archive"]) as tar:
        member = tar.getmember("auth/database.sqlite")
    data[member.offset_data + member.size // 2] ^= 0x01  # one byte
    changed.write_bytes(bytes(data))
    new = tmp / "never"
    done = restore(changed, [f"paths.output_dir={new}"], tmp / "changed-run")
    assert done.returncode == 1
    assert "'auth/database.sqlite' does not match its SHA-256" in done.stdout + done.stderr
    assert not new.exists()


def test_a_location_that_holds_anything_is_refused_naming_it(live_sqlite):
    tmp = live_sqlite["tmp"]
    busy = tmp / "busy"
    (busy / "registry" / "models").mkdir(parents=True)
    (busy / "registry" / "models" / "keep.txt").write_text("mine")
    done = restore(live_sqlite["archive"], [f"paths.output_dir={busy}"], tmp / "busy-run")
    assert done.returncode == 1
    assert f"registry.store: {busy / 'registry' / 'models'} is not empty" in done.stdout
    assert sorted(p.name for p in busy.rglob("*")) == ["keep.txt", "models", "registry"]
    # an existing database file: named, nothing written either
    taken = tmp / "taken"
    (taken / "serving").mkdir(parents=True)
    (taken / "serving" / "auth.db").write_bytes(b"")
    done = restore(live_sqlite["archive"], [f"paths.output_dir={taken}"], tmp / "taken-run")
    assert done.returncode == 1
    assert f"auth.url: {taken / 'serving' / 'auth.db'} exists: a restore never" in done.stdout
    assert [p.name for p in taken.rglob("*")] == ["serving", "auth.db"]


@pytest.mark.slow  # ~25 s; the live SQLite backup test is the default run's
def test_postgresql_stores_are_dumped_and_restored_into_an_empty_database(
    tmp_path, new_postgres_database
):
    client_tools()
    live = Stores(tmp_path / "live", new_postgres_database())
    taken = backup_while_running(live, tmp_path, ["tracking=none"])
    with tarfile.open(taken["archive"]) as tar:
        text = tar.extractfile("manifest.json").read().decode()
        assert sorted(n for n in tar.getnames() if n.endswith(".dump")) == [
            "registry/database.dump"  # registry, auth and log share one database: one dump
        ]
    assert ":automl_test@" not in text and ":***@" in text  # the password masked

    target = new_postgres_database()
    restored = Stores(tmp_path / "restored", target)
    done = restore(taken["archive"], restored.overrides, tmp_path / "restore-run")
    assert done.returncode == 0, done.stdout + done.stderr
    check_restored(restored, taken)

    again = restore(taken["archive"], restored.overrides, tmp_path / "again-run")
    assert again.returncode == 1
    assert "registry.uri: the database postgresql+psycopg://automl_test:***@" in again.stdout
    assert "is not empty (public." in again.stdout

    # a failure half-way (the second database cannot take the dump) removes what was written
    first, second = new_postgres_database(), new_postgres_database()
    engine = sa.create_engine(second)
    with engine.begin() as db:
        db.exec_driver_sql("CREATE TYPE users AS (x int)")  # a type, not a table: "empty"
    engine.dispose()
    elsewhere = tmp_path / "half"
    where = [
        f"paths.output_dir={elsewhere}",
        f"registry.uri='{first}'",
        f"auth.url='{second}'",
        f"prediction_log.store='{first}'",
        "stores=[registry,auth,prediction_log]",
    ]
    failed = restore(taken["archive"], where, tmp_path / "half-run")
    assert failed.returncode == 1 and "pg_restore" in failed.stdout
    engine = sa.create_engine(first)
    with engine.connect() as db:
        assert sa.inspect(db).get_table_names() == []  # the first restore was undone
    engine.dispose()
    assert not elsewhere.exists()


def client_tools() -> PgTools:
    """pg_dump and pg_restore as the command finds them (the test is skipped without)."""
    tools = PgTools(tuple(compose_config("automl.conf.apps", "backup").pg_bin))
    try:
        tools.find("pg_dump"), tools.find("pg_restore")
    except ConfigError as exc:
        pytest.skip(f"PostgreSQL's client tools are missing: {exc}")
    return tools


def test_pg_tools_get_the_password_through_the_environment_only():
    url = "postgresql+psycopg://me:s3cret@db.example:6543/stores?sslmode=require"
    part = database("registry", "database", "registry.uri", url)
    argv, env = client_tools().command("pg_dump", part, "--format=custom")
    libpq = "postgresql://me@db.example:6543/stores?sslmode=require"
    assert argv[1:] == [f"--dbname={libpq}", "--format=custom"]
    assert "s3cret" not in " ".join(argv) and env["PGPASSWORD"] == "s3cret"
    assert part.shown == "postgresql+psycopg://me:***@db.example:6543/stores?sslmode=require"


def test_the_stores_are_found_where_the_config_says(tmp_path):
    from automl.apps.backup import parts

    def compose(*overrides: str):
        where = f"paths.output_dir={tmp_path}"
        return compose_config("automl.conf.apps", "backup", [where, *overrides])

    found = {(p.store, p.name): p for p in parts(compose())}
    assert found[("registry", "bundles")].where == str(tmp_path / "registry" / "models")
    assert found[("tracking", "artifacts")].where == str(tmp_path / "mlflow-artifacts")
    assert found[("prediction_log", "log")].kind == "sqlite"
    parquet = "prediction_log.store._target_=automl.serving.prediction_log.ParquetStore"
    log = parts(compose(parquet, "stores=[prediction_log]"))
    assert [(p.kind, p.where) for p in log] == [("folder", f"{tmp_path}/serving/predictions.db")]
    server = parts(compose("tracking.uri=http://mlflow:5000", "stores=[tracking]"))
    assert server[0].kind is None and "MLflow server" in server[0].note
    assert parts(compose("tracking=none", "stores=[tracking]"))[0].kind is None
    with pytest.raises(ConfigError, match="choose among"):
        parts(compose("stores=[registry,models]"))


def hostile_archive(path: Path, name: str) -> Path:
    """An archive whose manifest lists one file, ``name``, with its true size and hash."""
    import hashlib
    import io

    body = b"not a database"
    manifest = {
        "format": backup_service.FORMAT,
        "stores": {
            "auth": {
                "database": {
                    "files": {name: {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}}
                }
            }
        },
    }
    with tarfile.open(path, "w") as tar:
        for member, data in (
            (backup_service.MANIFEST, json.dumps(manifest).encode()),
            (name, body),
        ):
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("name", ["../escape.sqlite", "/etc/escape.sqlite", "auth/../../x"])
def test_an_archive_naming_a_path_outside_itself_is_refused(tmp_path, name):
    archive = hostile_archive(tmp_path / "hostile.tar", name)
    with pytest.raises(AutomlError, match="its manifest lists an unsafe path"):
        backup_service.verify(archive)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hostile.tar"]


def test_a_file_that_is_not_an_archive_is_one_clear_error(tmp_path):
    (tmp_path / "notes.tar").write_text("hello")
    with pytest.raises(AutomlError, match="cannot read the archive"):
        backup_service.verify(tmp_path / "notes.tar")
