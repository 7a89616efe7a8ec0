"""The model registry: numbered versions of ``<project>.<dataset>`` models, and aliases.

A SQLite database (safe for several processes on one machine) records each version and
its metrics; the bundles are copied into the registry's store, so a run directory can be
deleted without losing a registered model. A model reference is ``name@alias``,
``name/3`` or ``name`` (the latest version).
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from automl.atomic import discard, publish, temp_path
from automl.errors import AutomlError

SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    bundle TEXT NOT NULL,
    run_dir TEXT,
    project TEXT,
    dataset TEXT,
    family TEXT,
    task TEXT,
    metrics TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE INDEX IF NOT EXISTS versions_dataset ON versions (dataset);
CREATE TABLE IF NOT EXISTS aliases (
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    version INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (name, alias)
);
"""
REFERENCE = re.compile(r"^(?P<name>[^@/]+)(?:@(?P<alias>[\w.-]+)|/(?P<version>\d+))?$")
COLUMNS = ["name", "version", "project", "dataset", "family", "task", "created_at", "run_dir"]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Registry:
    """Versions and aliases in ``uri`` (a SQLite file); bundles under ``store``."""

    def __init__(self, uri: str | Path, store: str | Path) -> None:
        self.uri = Path(uri).expanduser()
        self.store = Path(store).expanduser()

    @classmethod
    def default(cls) -> Registry:
        """The registry of the shared ``registry`` config group (conf/common/registry/)."""
        from automl.config import COMMON, compose_config

        where = compose_config(COMMON, "shared").registry
        return cls(where.uri, where.store)

    @contextmanager
    def connect(self, write: bool = False):
        """A connection; ``write`` takes the database's write lock for the whole block."""
        self.uri.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.uri, timeout=60, isolation_level=None)) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
            if not write:
                yield db
                return
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def register(self, name: str, bundle: Path, manifest: dict[str, Any], run_dir: Path) -> int:
        """Copy ``bundle`` into the store as the next version of ``name``; returns it."""
        folder = self.store / name
        staging = temp_path(folder / "incoming-bundle", directory=True)  # the number: later
        try:
            shutil.copytree(bundle, staging, dirs_exist_ok=True)
            with self.connect(write=True) as db:
                (latest,) = db.execute(
                    "SELECT COALESCE(MAX(version), 0) FROM versions WHERE name = ?", (name,)
                ).fetchone()
                version = latest + 1
                target = folder / str(version)
                publish(staging, target)
                record = (
                    name,
                    version,
                    str(target.resolve()),
                    str(run_dir.resolve()),
                    manifest.get("project"),
                    manifest.get("dataset"),
                    manifest.get("model_family"),
                    manifest.get("task"),
                    json.dumps(manifest.get("metrics", {})),
                    now(),
                )
                try:
                    db.execute("INSERT INTO versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", record)
                except BaseException:
                    shutil.rmtree(target, ignore_errors=True)
                    raise
        finally:
            discard(staging)
        return version

    def resolve(self, ref: str) -> Path:
        """The bundle directory of a reference ``name@alias``, ``name/3`` or ``name``."""
        name, version = self.version_of(ref)
        with self.connect() as db:
            row = db.execute(
                "SELECT bundle FROM versions WHERE name = ? AND version = ?", (name, version)
            ).fetchone()
        return Path(row[0])

    def version_of(self, ref: str) -> tuple[str, int]:
        """The (name, version) a reference points at; unknown ones name what exists."""
        match = REFERENCE.match(ref)
        if not match:
            raise AutomlError(
                f"'{ref}' is neither a bundle/run directory nor a registry reference "
                "(name@alias, name/3 or name)"
            )
        name, alias, version = match["name"], match["alias"], match["version"]
        with self.connect() as db:
            versions = [
                v
                for (v,) in db.execute(
                    "SELECT version FROM versions WHERE name = ? ORDER BY version", (name,)
                )
            ]
            if not versions:
                known = [n for (n,) in db.execute("SELECT DISTINCT name FROM versions")]
                raise AutomlError(
                    f"no model '{name}' in the registry {self.uri} (models: {known or 'none'})"
                )
            if alias:
                row = db.execute(
                    "SELECT version FROM aliases WHERE name = ? AND alias = ?", (name, alias)
                ).fetchone()
                if row is None:
                    aliases = [
                        a
                        for (a,) in db.execute("SELECT alias FROM aliases WHERE name = ?", (name,))
                    ]
                    raise AutomlError(
                        f"model '{name}' has no alias '{alias}' (aliases: {aliases or 'none'})"
                    )
                return name, row[0]
        if version is None:
            return name, versions[-1]
        if int(version) not in versions:
            raise AutomlError(f"model '{name}' has no version {version} (versions: {versions})")
        return name, int(version)

    def set_alias(self, name: str, alias: str, version: int) -> None:
        """Point ``alias`` of ``name`` at ``version`` (moving it if it exists)."""
        self.version_of(f"{name}/{version}")
        with self.connect(write=True) as db:
            db.execute(
                "INSERT INTO aliases VALUES (?, ?, ?, ?) ON CONFLICT (name, alias) "
                "DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at",
                (name, alias, version, now()),
            )

    def remove_alias(self, name: str, alias: str) -> None:
        self.version_of(f"{name}@{alias}")
        with self.connect(write=True) as db:
            db.execute("DELETE FROM aliases WHERE name = ? AND alias = ?", (name, alias))

    def delete(self, name: str, version: int, force: bool = False) -> None:
        """Delete a version and its stored bundle; refused while an alias points at it."""
        self.version_of(f"{name}/{version}")
        with self.connect(write=True) as db:
            aliases = [
                a
                for (a,) in db.execute(
                    "SELECT alias FROM aliases WHERE name = ? AND version = ?", (name, version)
                )
            ]
            if aliases and not force:
                raise AutomlError(
                    f"{name}/{version} is aliased as {aliases}; move the alias first "
                    "or pass --force"
                )
            db.execute("DELETE FROM aliases WHERE name = ? AND version = ?", (name, version))
            (bundle,) = db.execute(
                "DELETE FROM versions WHERE name = ? AND version = ? RETURNING bundle",
                (name, version),
            ).fetchone()
        shutil.rmtree(bundle, ignore_errors=True)

    def models(self) -> pd.DataFrame:
        """One row per model: versions, latest version, aliases."""
        with self.connect() as db:
            rows = db.execute(
                "SELECT v.name, COUNT(*), MAX(v.version), MAX(v.created_at), "
                "(SELECT GROUP_CONCAT(a.alias || '=' || a.version, ' ') FROM aliases a "
                " WHERE a.name = v.name) FROM versions v GROUP BY v.name ORDER BY v.name"
            ).fetchall()
        return pd.DataFrame(rows, columns=["name", "versions", "latest", "updated", "aliases"])

    def versions(self, name: str) -> pd.DataFrame:
        """Every version of ``name`` with its aliases and metrics."""
        return self.compare(name=name, metric=None, limit=None)

    def compare(
        self,
        *,
        dataset: str | None = None,
        name: str | None = None,
        family: str | None = None,
        metric: str | None = None,
        ascending: bool = False,
        min_value: float | None = None,
        max_value: float | None = None,
        limit: int | None = 20,
        offset: int = 0,
    ) -> pd.DataFrame:
        """Versions filtered by data set / name / family and a metric range, sorted, paged.

        The filtering, sorting and paging run in SQLite (metrics are JSON), so the cost
        stays small with thousands of runs.
        """
        where, args = [], []
        for column, value in (("dataset", dataset), ("name", name), ("family", family)):
            if value is not None:
                where.append(f"v.{column} = ?")
                args.append(value)
        value_sql = "json_extract(v.metrics, ?)"
        if metric is not None:
            where.append(f"{value_sql} IS NOT NULL")
            args.append(f'$."{metric}"')
            for bound, op in ((min_value, ">="), (max_value, "<=")):
                if bound is not None:
                    where.append(f"{value_sql} {op} ?")
                    args += [f'$."{metric}"', bound]
        sql = (
            "SELECT " + ", ".join(f"v.{c}" for c in COLUMNS) + ", v.metrics, "
            "(SELECT GROUP_CONCAT(a.alias, ' ') FROM aliases a "
            " WHERE a.name = v.name AND a.version = v.version) FROM versions v"
        )
        if where:
            sql += " WHERE " + " AND ".join(where)
        if metric is not None:
            sql += f" ORDER BY {value_sql} {'ASC' if ascending else 'DESC'}, v.version DESC"
            args.append(f'$."{metric}"')
        else:
            sql += " ORDER BY v.name, v.version"
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            args += [limit, offset]
        with self.connect() as db:
            rows = db.execute(sql, args).fetchall()
        records = []
        for *fields, metrics, aliases in rows:
            record = dict(zip(COLUMNS, fields, strict=True))
            record["aliases"] = aliases or ""
            record.update(json.loads(metrics))
            records.append(record)
        return pd.DataFrame(records, columns=None if records else [*COLUMNS, "aliases"])
