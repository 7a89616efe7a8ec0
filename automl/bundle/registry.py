"""The model registry: numbered versions of ``<project>.<dataset>`` models, and aliases.

A database records each version and its metrics: ``registry.uri`` is a path (an SQLite
file, safe for several processes on one machine), an ``sqlite:///`` URL or a PostgreSQL
URL (``postgresql+psycopg://user:pw@host/db``, shared by several machines). The bundles
are copied into the registry's store, so a run directory can be deleted without losing a
registered model. A model reference is ``name@alias``, ``name/3`` or ``name`` (the latest
version).

Writes hold the registry's write lock for their whole transaction (SQLite's
``BEGIN IMMEDIATE``; a PostgreSQL transaction-level advisory lock), so processes
registering at once get distinct version numbers. The schema is created, or a database
written by older code brought up to date, under the same lock (:meth:`Registry.migrate`).

The store is a code-execution boundary: loading a bundle unpickles it. At registration the
database records the SHA-256 of the stored manifest and pipeline, and :meth:`Registry.resolve`
refuses a bundle that no longer matches them, before anything is unpickled. Version numbers
are never reused (a per-name high-water mark, as in MLflow), so ``name/3`` always means the
same bundle.

With a signing key (``registry.signing_key``, from ``$AUTOML_REGISTRY_SIGNING_KEY``), each
version also records an HMAC-SHA256 of its name, version and hashes, and only versions
signed with that key are loaded: someone who can write the database and the store but
does not hold the key cannot slip a bundle in. ``sign`` signs the versions registered
before the key was set (after checking their hashes).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import URL, Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from automl.atomic import discard
from automl.bundle.model import CHECKSUM, MANIFEST, PIPELINE, Model, read_manifest, sha256
from automl.bundle.store import BundleStore
from automl.database import replace_prefix, sqlite_pragmas
from automl.errors import AutomlError
from automl.redact import redact_text

log = logging.getLogger(__name__)

SCHEMA = (  # portable DDL (SQLite, PostgreSQL), run under the write lock
    """CREATE TABLE IF NOT EXISTS versions (
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
)""",
    "CREATE INDEX IF NOT EXISTS versions_dataset ON versions (dataset)",
    """CREATE TABLE IF NOT EXISTS aliases (
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    version INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (name, alias)
)""",
    """CREATE TABLE IF NOT EXISTS bundle_hashes (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    pipeline_sha256 TEXT NOT NULL,
    signature TEXT,
    PRIMARY KEY (name, version)
)""",
    """CREATE TABLE IF NOT EXISTS name_versions (
    name TEXT PRIMARY KEY,
    last_version INTEGER NOT NULL
)""",
)
SCHEMA_VERSION = 2  # 1: bundle_hashes and name_versions; 2: signatures (see Registry.migrate)
# where the schema version is kept: SQLite's PRAGMA user_version; on PostgreSQL this table
META = "CREATE TABLE IF NOT EXISTS registry_schema (version INTEGER NOT NULL)"
LOCK_KEY = 0x6175746F6D6C  # "automl": the PostgreSQL advisory lock that serialises writes
INSERT_VERSION = text(
    "INSERT INTO versions (name, version, bundle, run_dir, project, dataset, family, task, "
    "metrics, created_at) VALUES (:name, :version, :bundle, :run_dir, :project, :dataset, "
    ":family, :task, :metrics, :created_at)"
)
# the dialects' differences in the queries: joining strings, a metric (named :metric)
# read from a version's metrics (JSON text)
AGGREGATE = {"sqlite": "GROUP_CONCAT", "postgresql": "string_agg"}
METRIC = {
    "sqlite": "json_extract(v.metrics, '$.\"' || :metric || '\"')",
    "postgresql": "CAST(CAST(v.metrics AS json) ->> :metric AS double precision)",
}
REFERENCE = re.compile(r"^(?P<name>[^@/]+)(?:@(?P<alias>[\w.-]+)|/(?P<version>\d+))?$")
COLUMNS = ["name", "version", "project", "dataset", "family", "task", "created_at", "run_dir"]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def bundle_hashes(bundle: Path) -> tuple[str, str]:
    """SHA-256 of a bundle's manifest and pipeline, once the bundle is self-consistent:
    ``manifest.sha256`` matches and the manifest lists the pipeline's hash."""
    manifest = read_manifest(bundle)
    pipeline = sha256(bundle / PIPELINE) if (bundle / PIPELINE).is_file() else None
    if pipeline is None or manifest.get("files", {}).get(PIPELINE) != pipeline:
        raise AutomlError(f"'{PIPELINE}' is missing, unlisted or does not match its manifest")
    return sha256(bundle / MANIFEST), pipeline


def database_url(uri: str | Path, key: str = "registry.uri") -> URL:
    """``registry.uri`` (or the setting ``key``) as a SQLAlchemy URL: a plain path is an
    SQLite file; a URL must be SQLite's or PostgreSQL's."""
    if isinstance(uri, Path) or "://" not in uri:
        return URL.create("sqlite", database=str(Path(uri).expanduser()))
    url = make_url(uri)
    if url.get_backend_name() not in AGGREGATE:
        raise AutomlError(
            f"{key} '{redact_text(uri)}' is neither a path (an SQLite file) nor an "
            "SQLite or PostgreSQL URL (sqlite:///PATH, postgresql+psycopg://USER@HOST/DB)"
        )
    return url


def relocate(url: str, old_store: Path, new_store: Path) -> None:
    """Point the versions of the registry database at ``url`` (a SQLAlchemy URL) whose
    bundles were under ``old_store`` at the same bundles under ``new_store`` (a restored
    copy of the registry, elsewhere)."""
    replace_prefix(url, [("versions", "bundle")], str(old_store), str(new_store))


def record_hashes(
    db: Connection, name: str, version: int, hashes: tuple[str, str], signature: str | None
) -> None:
    """Record the bundle hashes (and signature) of a version."""
    db.execute(
        text(
            "INSERT INTO bundle_hashes (name, version, manifest_sha256, pipeline_sha256, "
            "signature) VALUES (:name, :version, :manifest, :pipeline, :signature)"
        ),
        {
            "name": name,
            "version": version,
            "manifest": hashes[0],
            "pipeline": hashes[1],
            "signature": signature,
        },
    )


@cache
def server_engine(url: str) -> Engine:
    """The process's pooled engine for a PostgreSQL registry database."""
    return create_engine(url, pool_pre_ping=True, isolation_level="READ COMMITTED")


def sqlite_setup(connection: sqlite3.Connection, record: Any) -> None:
    """Each SQLite connection: every store's pragmas (WAL, a 60 s busy timeout), and no
    transaction begun by the driver (:meth:`Registry.locked` begins them)."""
    connection.isolation_level = None
    sqlite_pragmas(connection, record)


class Registry:
    """Versions and aliases in the database at ``uri`` (a path: an SQLite file; or an
    SQLite or PostgreSQL URL); bundles under ``store``; with a ``signing_key``, only
    versions signed with it are resolved."""

    def __init__(
        self,
        uri: str | Path,
        store: str | Path,
        signing_key: str | None = None,
        cache: str | Path | None = None,
    ) -> None:
        self.url = database_url(uri)  # the SQLAlchemy URL (with its password)
        self.uri = redact_text(str(uri))  # where, for messages: the path or URL, no password
        self.backend = self.url.get_backend_name()  # "sqlite" or "postgresql"
        self.store = store  # where bundles are kept, as given: a folder or an fsspec URL
        self.bundles = BundleStore(store, cache)
        self.signing_key = signing_key.encode() if signing_key else None

    @classmethod
    def at(cls, location: Any) -> Registry:
        """The registry a ``registry`` config node (``uri``, ``store``, ``signing_key``,
        ``cache``) points at."""
        return cls(
            location.uri,
            location.store,
            getattr(location, "signing_key", None),
            getattr(location, "cache", None),
        )

    @classmethod
    def default(cls, folder: Path | None = None) -> Registry:
        """The registry of the shared ``registry`` config group (conf/common/registry/);
        ``folder``: its database (SQLite) and store in that folder instead."""
        from automl.config import COMMON, compose_config

        moved = []
        if folder is not None:
            moved = [
                f"registry.uri={folder / 'registry.db'}",
                f"registry.store={folder / 'models'}",
            ]
        return cls.at(compose_config(COMMON, "shared", moved).registry)

    def signature(self, name: str, version: int, hashes: tuple[str, str]) -> str | None:
        """HMAC-SHA256 of a version and its bundle hashes (None without a signing key)."""
        if self.signing_key is None:
            return None
        message = "\n".join([name, str(version), *hashes]).encode()
        return hmac.new(self.signing_key, message, hashlib.sha256).hexdigest()

    @cached_property
    def engine(self) -> Engine:
        """This registry's engine, made on first use: SQLite opens a connection per use
        (:func:`sqlite_setup`); PostgreSQL pools them, checked before use, one pool per
        database for the process (``load_model`` makes a Registry per call)."""
        if self.backend == "postgresql":
            return server_engine(self.url.render_as_string(hide_password=False))
        database = self.url.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(self.url, poolclass=NullPool)
        event.listen(engine, "connect", sqlite_setup)
        return engine

    @contextmanager
    def connect(self, write: bool = False) -> Iterator[Connection]:
        """A connection to the database, its schema up to date; ``write``: the block is one
        transaction holding the write lock (:meth:`locked`)."""
        with self.engine.connect() as db:
            if self.schema_version(db) < SCHEMA_VERSION:
                self.migrate(db)
            if not write:
                yield db
                return
            with self.locked(db):
                yield db

    @contextmanager
    def locked(self, db: Connection) -> Iterator[None]:
        """A transaction on ``db`` holding the registry's write lock until it is committed
        at the end of the block (rolled back on an error); one writer at a time, across
        processes: SQLite's ``BEGIN IMMEDIATE``, or a PostgreSQL advisory lock."""
        if self.backend == "sqlite":
            db.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            db.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
        try:
            yield
            db.commit()
        except BaseException:
            db.rollback()
            raise

    def schema_version(self, db: Connection) -> int:
        """The database's schema version (0: a new database)."""
        if self.backend == "sqlite":
            return db.exec_driver_sql("PRAGMA user_version").scalar_one()
        if db.execute(text("SELECT to_regclass('registry_schema')")).scalar() is None:
            return 0
        return db.execute(text("SELECT MAX(version) FROM registry_schema")).scalar() or 0

    def migrate(self, db: Connection) -> None:
        """Create the schema, or bring a database written before bundle hashes up to date,
        once, under the write lock (a process that waited for it finds the work done):
        each version whose stored bundle is intact is trusted as it is now (its hashes
        recorded), and each name's high-water mark starts at its latest version."""
        with self.locked(db):
            if self.schema_version(db) >= SCHEMA_VERSION:
                return
            for statement in SCHEMA:
                db.execute(text(statement))
            if "signature" not in {c["name"] for c in inspect(db).get_columns("bundle_hashes")}:
                db.execute(text("ALTER TABLE bundle_hashes ADD COLUMN signature TEXT"))
            db.execute(
                text(
                    "INSERT INTO name_versions (name, last_version) SELECT name, MAX(version) "
                    "FROM versions GROUP BY name ON CONFLICT (name) DO UPDATE SET "
                    "last_version = excluded.last_version "
                    "WHERE excluded.last_version > name_versions.last_version"
                )
            )
            rows = db.execute(
                text(
                    "SELECT v.name, v.version, v.bundle FROM versions v WHERE NOT EXISTS "
                    "(SELECT 1 FROM bundle_hashes h WHERE h.name = v.name "
                    "AND h.version = v.version)"
                )
            ).all()
            for name, version, bundle in rows:
                try:
                    hashes = bundle_hashes(Path(bundle))
                except (AutomlError, OSError, ValueError) as exc:
                    log.warning("registry: %s/%d not trusted (%s)", name, version, exc)
                    continue
                record_hashes(db, name, version, hashes, None)
            if self.backend == "sqlite":  # a PRAGMA takes no parameters: a constant
                db.exec_driver_sql(f"PRAGMA user_version = {SCHEMA_VERSION}")
            else:
                db.execute(text(META))
                db.execute(text("DELETE FROM registry_schema"))
                db.execute(
                    text("INSERT INTO registry_schema (version) VALUES (:version)"),
                    {"version": SCHEMA_VERSION},
                )

    def register(self, name: str, bundle: Path, manifest: dict[str, Any], run_dir: Path) -> int:
        """Copy ``bundle`` into the store as the next version of ``name``; returns it.

        The stored copy's hashes are recorded; a number is never given twice, and a folder
        left under the new number by a crash before the commit is replaced.
        """
        staging = self.bundles.staging(name)  # the version number: later
        try:
            shutil.copytree(bundle, staging, dirs_exist_ok=True)
            try:
                hashes = bundle_hashes(staging)
            except AutomlError as exc:
                raise AutomlError(f"cannot register '{bundle}' as {name}: {exc}") from None
            with self.connect(write=True) as db:
                latest = db.execute(
                    text(
                        "SELECT COALESCE(MAX(v), 0) FROM (SELECT last_version AS v FROM "
                        "name_versions WHERE name = :name UNION ALL SELECT MAX(version) "
                        "FROM versions WHERE name = :name) AS known"
                    ),
                    {"name": name},
                ).scalar_one()
                version = latest + 1
                stored = self.bundles.put(staging, name, version)  # under the lock
                record = {
                    "name": name,
                    "version": version,
                    "bundle": stored,
                    "run_dir": str(run_dir.resolve()),
                    "project": manifest.get("project"),
                    "dataset": manifest.get("dataset"),
                    "family": manifest.get("model_family"),
                    "task": manifest.get("task"),
                    "metrics": json.dumps(manifest.get("metrics", {})),
                    "created_at": now(),
                }
                try:
                    db.execute(INSERT_VERSION, record)
                    record_hashes(db, name, version, hashes, self.signature(name, version, hashes))
                    db.execute(
                        text(
                            "INSERT INTO name_versions (name, last_version) VALUES (:name, "
                            ":version) ON CONFLICT (name) DO UPDATE SET "
                            "last_version = excluded.last_version"
                        ),
                        {"name": name, "version": version},
                    )
                except BaseException:
                    self.bundles.remove(stored)
                    raise
        finally:
            discard(staging)
        return version

    def resolve(self, ref: str) -> Path:
        """The bundle directory of a reference ``name@alias``, ``name/3`` or ``name``, once
        it matches the hashes recorded when it was registered (else ``AutomlError``)."""
        return self.trusted(ref)[0]

    def load(self, ref: str) -> Model:
        """The model of a reference, once :meth:`resolve` trusts it; the bytes unpickled are
        checked against the recorded hashes as they are read (nothing can swap them after
        the check)."""
        return Model.load(*self.trusted(ref))

    def trusted(self, ref: str) -> tuple[Path, tuple[str, str]]:
        """(bundle directory, recorded hashes) of a reference whose stored bundle matches
        what was registered and, with a signing key, is signed with it."""
        name, version = self.version_of(ref)
        bundle, recorded, signature = self.recorded(name, version)
        self.verify(f"{name}/{version}", bundle, recorded)
        expected = self.signature(name, version, recorded)  # type: ignore[arg-type]
        if expected is not None and not hmac.compare_digest(signature or "", expected):
            raise AutomlError(
                f"registered model '{name}/{version}' refused: it is not signed with this "
                "registry's signing key (registry.signing_key); if it is yours, sign it with "
                "`python -m automl.registry sign`"
            )
        return bundle, recorded

    def recorded(self, name: str, version: int) -> tuple[Path, tuple, str | None]:
        """(bundle folder, (manifest hash, pipeline hash), signature) of a version; a bundle
        in a remote store is fetched into the local cache first."""
        with self.connect() as db:
            bundle, manifest, pipeline, signature = db.execute(
                text(
                    "SELECT v.bundle, h.manifest_sha256, h.pipeline_sha256, h.signature "
                    "FROM versions v LEFT JOIN bundle_hashes h "
                    "ON h.name = v.name AND h.version = v.version "
                    "WHERE v.name = :name AND v.version = :version"
                ),
                {"name": name, "version": version},
            ).one()
        if manifest is None:  # no recorded hash: verify() refuses it
            return Path(bundle), (manifest, pipeline), signature
        local = self.bundles.local(bundle, name, version, manifest)  # a remote one: fetched
        return local, (manifest, pipeline), signature

    def sign(self, name: str | None = None) -> list[str]:
        """Sign every version (of ``name``) not yet signed with this registry's key, once
        all of them are intact (a changed bundle is an error and nothing is signed); the
        versions signed."""
        if self.signing_key is None:
            raise AutomlError(
                "no signing key: set registry.signing_key ($AUTOML_REGISTRY_SIGNING_KEY)"
            )
        where = "" if name is None else " WHERE name = :name"
        with self.connect() as db:
            rows = db.execute(
                text(f"SELECT name, version FROM versions{where} ORDER BY name, version"),
                {"name": name},
            ).all()
        unsigned = []
        for model, version in rows:
            bundle, recorded, signature = self.recorded(model, version)
            expected = self.signature(model, version, recorded)
            if signature is None or not hmac.compare_digest(signature, expected or ""):
                self.verify(f"{model}/{version}", bundle, recorded)  # all intact, or none signed
                unsigned.append({"signature": expected, "name": model, "version": version})
        if unsigned:
            with self.connect(write=True) as db:
                db.execute(
                    text(
                        "UPDATE bundle_hashes SET signature = :signature "
                        "WHERE name = :name AND version = :version"
                    ),
                    unsigned,
                )
        return [f"{row['name']}/{row['version']}" for row in unsigned]

    @staticmethod
    def verify(label: str, bundle: Path, recorded: tuple[str | None, ...]) -> None:
        """Refuse a stored bundle that differs from what was registered as ``label``."""
        refused = f"registered model '{label}' refused"
        if None in recorded:
            raise AutomlError(
                f"{refused}: the registry has no recorded hash of its bundle (missing or "
                "damaged when the registry was upgraded); register the model again"
            )
        current = []
        for file in (MANIFEST, PIPELINE):
            path = bundle / file
            current.append(sha256(path) if path.is_file() else None)
        changed = [
            f for f, a, b in zip((MANIFEST, PIPELINE), current, recorded, strict=True) if a != b
        ]
        if changed or not (bundle / CHECKSUM).is_file():
            raise AutomlError(
                f"{refused}: its stored bundle does not match the one registered "
                f"({', '.join(changed or [CHECKSUM])} changed since registration); restore "
                "the bundle or register the model again"
            )

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
            versions = (
                db.execute(
                    text("SELECT version FROM versions WHERE name = :name ORDER BY version"),
                    {"name": name},
                )
                .scalars()
                .all()
            )
            if not versions:
                known = (
                    db.execute(text("SELECT DISTINCT name FROM versions ORDER BY name"))
                    .scalars()
                    .all()
                )
                raise AutomlError(
                    f"no model '{name}' in the registry {self.uri} (models: {known or 'none'})"
                )
            if alias:
                found = db.execute(
                    text("SELECT version FROM aliases WHERE name = :name AND alias = :alias"),
                    {"name": name, "alias": alias},
                ).scalar()
                if found is None:
                    aliases = (
                        db.execute(
                            text("SELECT alias FROM aliases WHERE name = :name ORDER BY alias"),
                            {"name": name},
                        )
                        .scalars()
                        .all()
                    )
                    raise AutomlError(
                        f"model '{name}' has no alias '{alias}' (aliases: {aliases or 'none'})"
                    )
                return name, found
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
                text(
                    "INSERT INTO aliases (name, alias, version, updated_at) VALUES (:name, "
                    ":alias, :version, :updated_at) ON CONFLICT (name, alias) DO UPDATE SET "
                    "version = excluded.version, updated_at = excluded.updated_at"
                ),
                {"name": name, "alias": alias, "version": version, "updated_at": now()},
            )

    def remove_alias(self, name: str, alias: str) -> None:
        self.version_of(f"{name}@{alias}")
        with self.connect(write=True) as db:
            db.execute(
                text("DELETE FROM aliases WHERE name = :name AND alias = :alias"),
                {"name": name, "alias": alias},
            )

    def delete(self, name: str, version: int, force: bool = False) -> None:
        """Delete a version and its stored bundle; refused while an alias points at it."""
        self.version_of(f"{name}/{version}")
        key = {"name": name, "version": version}
        with self.connect(write=True) as db:
            aliases = (
                db.execute(
                    text(
                        "SELECT alias FROM aliases WHERE name = :name AND version = :version "
                        "ORDER BY alias"
                    ),
                    key,
                )
                .scalars()
                .all()
            )
            if aliases and not force:
                raise AutomlError(
                    f"{name}/{version} is aliased as {aliases}; move the alias first "
                    "or pass --force"
                )
            for table in ("aliases", "bundle_hashes"):
                db.execute(
                    text(f"DELETE FROM {table} WHERE name = :name AND version = :version"), key
                )
            bundle = db.execute(
                text(
                    "DELETE FROM versions WHERE name = :name AND version = :version "
                    "RETURNING bundle"
                ),
                key,
            ).scalar_one()
        self.bundles.remove(bundle)

    def models(self) -> pd.DataFrame:
        """One row per model: versions, latest version, aliases."""
        aggregate = AGGREGATE[self.backend]
        with self.connect() as db:
            rows = db.execute(
                text(
                    "SELECT v.name, COUNT(*), MAX(v.version), MAX(v.created_at), "
                    f"(SELECT {aggregate}(a.alias || '=' || a.version, ' ') FROM aliases a "
                    " WHERE a.name = v.name) FROM versions v GROUP BY v.name ORDER BY v.name"
                )
            ).all()
        return pd.DataFrame(
            [tuple(row) for row in rows],
            columns=["name", "versions", "latest", "updated", "aliases"],
        )

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

        The filtering, sorting and paging run in the database (metrics are JSON), so the
        cost stays small with thousands of runs.
        """
        where, params = [], {}
        for column, value in (("dataset", dataset), ("name", name), ("family", family)):
            if value is not None:
                where.append(f"v.{column} = :{column}")
                params[column] = value
        value_sql = METRIC[self.backend]
        if metric is not None:
            where.append(f"{value_sql} IS NOT NULL")
            params["metric"] = metric
            for key, bound, op in (("min_value", min_value, ">="), ("max_value", max_value, "<=")):
                if bound is not None:
                    where.append(f"{value_sql} {op} :{key}")
                    params[key] = bound
        sql = (
            "SELECT " + ", ".join(f"v.{c}" for c in COLUMNS) + ", v.metrics, "
            f"(SELECT {AGGREGATE[self.backend]}(a.alias, ' ') FROM aliases a "
            " WHERE a.name = v.name AND a.version = v.version) FROM versions v"
        )
        if where:
            sql += " WHERE " + " AND ".join(where)
        if metric is not None:
            sql += f" ORDER BY {value_sql} {'ASC' if ascending else 'DESC'}, v.version DESC"
        else:
            sql += " ORDER BY v.name, v.version"
        if limit is not None:
            sql += " LIMIT :limit OFFSET :offset"
            params.update(limit=limit, offset=offset)
        with self.connect() as db:
            rows = db.execute(text(sql), params).all()
        records = []
        for *fields, metrics, aliases in rows:
            record = dict(zip(COLUMNS, fields, strict=True))
            record["aliases"] = aliases or ""
            record.update(json.loads(metrics))
            records.append(record)
        return pd.DataFrame(records, columns=None if records else [*COLUMNS, "aliases"])
