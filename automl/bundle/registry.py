"""The model registry: numbered versions of ``<project>.<dataset>`` models, and aliases.

A SQLite database (safe for several processes on one machine) records each version and
its metrics; the bundles are copied into the registry's store, so a run directory can be
deleted without losing a registered model. A model reference is ``name@alias``,
``name/3`` or ``name`` (the latest version).

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
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from automl.atomic import discard, publish, temp_path
from automl.bundle.model import CHECKSUM, MANIFEST, PIPELINE, Model, read_manifest, sha256
from automl.errors import AutomlError

log = logging.getLogger(__name__)

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
CREATE TABLE IF NOT EXISTS bundle_hashes (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    pipeline_sha256 TEXT NOT NULL,
    signature TEXT,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS name_versions (
    name TEXT PRIMARY KEY,
    last_version INTEGER NOT NULL
);
"""
SCHEMA_VERSION = 2  # 1: bundle_hashes and name_versions; 2: signatures (migrated in connect)
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


class Registry:
    """Versions and aliases in ``uri`` (a SQLite file); bundles under ``store``; with a
    ``signing_key``, only versions signed with it are resolved."""

    def __init__(self, uri: str | Path, store: str | Path, signing_key: str | None = None) -> None:
        self.uri = Path(uri).expanduser()
        self.store = Path(store).expanduser()
        self.signing_key = signing_key.encode() if signing_key else None

    @classmethod
    def at(cls, location: Any) -> Registry:
        """The registry a ``registry`` config node (``uri``, ``store``, ``signing_key``)
        points at."""
        return cls(location.uri, location.store, getattr(location, "signing_key", None))

    @classmethod
    def default(cls, folder: Path | None = None) -> Registry:
        """The registry of the shared ``registry`` config group (conf/common/registry/);
        ``folder``: its database and store in that folder instead."""
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

    @contextmanager
    def connect(self, write: bool = False):
        """A connection; ``write`` takes the database's write lock for the whole block."""
        self.uri.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.uri, timeout=60, isolation_level=None)) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
            if db.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                self.migrate(db)
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

    @staticmethod
    def migrate(db: sqlite3.Connection) -> None:
        """Bring a database written before bundle hashes up to date, once: each version
        whose stored bundle is intact is trusted as it is now (its hashes recorded), and
        each name's high-water mark starts at its latest version."""
        db.execute("BEGIN IMMEDIATE")
        try:
            have = {row[1] for row in db.execute("PRAGMA table_info(bundle_hashes)")}
            if "signature" not in have:
                db.execute("ALTER TABLE bundle_hashes ADD COLUMN signature TEXT")
            if db.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                db.execute(
                    "INSERT INTO name_versions SELECT name, MAX(version) FROM versions "
                    "GROUP BY name ON CONFLICT (name) DO UPDATE SET last_version = "
                    "MAX(last_version, excluded.last_version)"
                )
                rows = db.execute(
                    "SELECT v.name, v.version, v.bundle FROM versions v WHERE NOT EXISTS "
                    "(SELECT 1 FROM bundle_hashes h WHERE h.name = v.name "
                    "AND h.version = v.version)"
                ).fetchall()
                for name, version, bundle in rows:
                    try:
                        hashes = bundle_hashes(Path(bundle))
                    except (AutomlError, OSError, ValueError) as exc:
                        log.warning("registry: %s/%d not trusted (%s)", name, version, exc)
                        continue
                    db.execute(
                        "INSERT INTO bundle_hashes VALUES (?, ?, ?, ?, NULL)",
                        (name, version, *hashes),
                    )
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def register(self, name: str, bundle: Path, manifest: dict[str, Any], run_dir: Path) -> int:
        """Copy ``bundle`` into the store as the next version of ``name``; returns it.

        The stored copy's hashes are recorded; a number is never given twice, and a folder
        left under the new number by a crash before the commit is replaced.
        """
        folder = self.store / name
        staging = temp_path(folder / "incoming-bundle", directory=True)  # the number: later
        try:
            shutil.copytree(bundle, staging, dirs_exist_ok=True)
            try:
                hashes = bundle_hashes(staging)
            except AutomlError as exc:
                raise AutomlError(f"cannot register '{bundle}' as {name}: {exc}") from None
            with self.connect(write=True) as db:
                (latest,) = db.execute(
                    "SELECT MAX(COALESCE((SELECT last_version FROM name_versions "
                    "WHERE name = ?1), 0), COALESCE((SELECT MAX(version) FROM versions "
                    "WHERE name = ?1), 0))",
                    (name,),
                ).fetchone()
                version = latest + 1
                target = folder / str(version)
                if target.exists() or target.is_symlink():  # no row can point at it: we hold
                    log.warning("registry: removing '%s', left by a crash", target)  # the lock
                    discard(target)
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
                    db.execute(
                        "INSERT INTO bundle_hashes VALUES (?, ?, ?, ?, ?)",
                        (name, version, *hashes, self.signature(name, version, hashes)),
                    )
                    db.execute(
                        "INSERT INTO name_versions VALUES (?, ?) ON CONFLICT (name) "
                        "DO UPDATE SET last_version = excluded.last_version",
                        (name, version),
                    )
                except BaseException:
                    shutil.rmtree(target, ignore_errors=True)
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
        """(bundle folder, (manifest hash, pipeline hash), signature) of a version."""
        with self.connect() as db:
            bundle, manifest, pipeline, signature = db.execute(
                "SELECT v.bundle, h.manifest_sha256, h.pipeline_sha256, h.signature "
                "FROM versions v LEFT JOIN bundle_hashes h "
                "ON h.name = v.name AND h.version = v.version "
                "WHERE v.name = ? AND v.version = ?",
                (name, version),
            ).fetchone()
        return Path(bundle), (manifest, pipeline), signature

    def sign(self, name: str | None = None) -> list[str]:
        """Sign every version (of ``name``) not yet signed with this registry's key, once
        all of them are intact (a changed bundle is an error and nothing is signed); the
        versions signed."""
        if self.signing_key is None:
            raise AutomlError(
                "no signing key: set registry.signing_key ($AUTOML_REGISTRY_SIGNING_KEY)"
            )
        with self.connect() as db:
            rows = db.execute(
                "SELECT name, version FROM versions WHERE ?1 IS NULL OR name = ?1 "
                "ORDER BY name, version",
                (name,),
            ).fetchall()
        unsigned = []
        for model, version in rows:
            bundle, recorded, signature = self.recorded(model, version)
            expected = self.signature(model, version, recorded)
            if signature is None or not hmac.compare_digest(signature, expected or ""):
                self.verify(f"{model}/{version}", bundle, recorded)  # all intact, or none signed
                unsigned.append((expected, model, version))
        with self.connect(write=True) as db:
            db.executemany(
                "UPDATE bundle_hashes SET signature = ? WHERE name = ? AND version = ?", unsigned
            )
        return [f"{model}/{version}" for _, model, version in unsigned]

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
            db.execute("DELETE FROM bundle_hashes WHERE name = ? AND version = ?", (name, version))
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
