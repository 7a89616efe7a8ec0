"""Backups of the shared stores: one archive of consistent snapshots, and its restore.

A store is one or more :class:`Part`: a database (SQLite, copied through SQLite's online
backup API; PostgreSQL, dumped by ``pg_dump --format=custom``) or a folder (copied file by
file). Writers keep running meanwhile. Databases are snapshotted first, then folders: a
store writes its files before the row that names them (a bundle before its registry
version), so every row of a snapshot finds its files. Parts in one database share one dump.

The archive (``automl-backup-<UTC time>.tar``: a temporary file, synced, then renamed, read
by its owner only) holds the snapshots and ``manifest.json``: when, which automl, and per
store and part its kind, config key, source (passwords masked) and files (size, SHA-256).

A restore checks every file against the manifest before it writes anything, then restores
each part into an empty location (a new SQLite file, an empty PostgreSQL database through
``pg_restore --no-owner``, a missing or empty folder) and points the paths a database
records (bundles, artifacts) at the restored folders. Nothing existing is overwritten; on
any failure, what the restore wrote is removed.
"""

from __future__ import annotations

import glob
import hashlib
import io
import json
import logging
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from contextlib import closing, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path, PurePosixPath
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from automl.atomic import discard, publish, temp_path
from automl.config import sqlite_path
from automl.errors import AutomlError, ConfigError
from automl.redact import redact_text

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT = 1  # the manifest's layout
SUFFIX = {"sqlite": ".sqlite", "postgresql": ".dump"}  # a database snapshot's file
CHUNK = 1 << 20
PRIVATE = 0o600  # an archive holds every store: its owner alone reads it
# what makes a PostgreSQL database not empty (tables, views, sequences, foreign tables)
PG_OBJECTS = sa.text(
    "SELECT n.nspname, c.relname, c.relkind FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN "
    "('r', 'p', 'v', 'm', 'S', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg\\_%' "
    "UNION ALL SELECT nspname, '', 'n' FROM pg_namespace WHERE nspname NOT IN "
    "('pg_catalog', 'information_schema', 'public') AND nspname NOT LIKE 'pg\\_%'"
)
DROP = {"v": "VIEW", "m": "MATERIALIZED VIEW", "f": "FOREIGN TABLE", "r": "TABLE", "p": "TABLE"}
DROP |= {"S": "SEQUENCE", "n": "SCHEMA"}  # in this order: dependants first


@dataclass(frozen=True)
class Part:
    """One piece of a store: a database or a folder, and the config key that places it."""

    store: str  # registry | auth | prediction_log | tracking
    name: str  # database | bundles | log | artifacts
    key: str  # the config key that says where it is (named in messages)
    kind: str | None  # sqlite | postgresql | folder; None: not backed up (``note`` says why)
    where: str = ""  # the SQLite file, the PostgreSQL URL (with its password), the folder
    note: str = ""
    relocate: Callable[[str, Path, Path], None] | None = None  # rewrites the paths it records
    holds: str = ""  # the folder part (of the same store) whose paths the database records

    @property
    def label(self) -> str:
        return f"{self.store}.{self.name}"

    @property
    def shown(self) -> str:
        """Where, for people: passwords masked."""
        return redact_text(self.where)

    @property
    def url(self) -> str:
        """A database part's SQLAlchemy URL."""
        return f"sqlite:///{self.where}" if self.kind == "sqlite" else self.where

    @property
    def identity(self) -> str:
        """The same for two parts in one database or folder."""
        if self.kind != "postgresql":
            return f"{self.kind}:{self.where}"
        url = make_url(self.where)
        return f"postgresql://{url.host or ''}:{url.port or 5432}/{url.database or ''}"


def database(store: str, name: str, key: str, url: str | URL, **extra: Any) -> Part:
    """The database part at a SQLAlchemy ``url`` (SQLite or PostgreSQL)."""
    url = make_url(url) if isinstance(url, str) else url
    backend = url.get_backend_name()
    if backend == "sqlite":
        path = sqlite_path(url.render_as_string(hide_password=False))
        if path is None:
            raise ConfigError(f"{key}: an in-memory SQLite database cannot be backed up")
        return Part(store, name, key, "sqlite", str(path), **extra)
    if backend == "postgresql":
        where = url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        return Part(store, name, key, "postgresql", where, **extra)
    raise ConfigError(
        f"{key}: '{url.render_as_string(hide_password=True)}' is a {backend} database; "
        "only SQLite and PostgreSQL databases are backed up"
    )


def folder(store: str, name: str, key: str, path: str | Path) -> Part:
    """The folder part at ``path``."""
    return Part(store, name, key, "folder", str(Path(path).expanduser().resolve()))


def skipped(store: str, name: str, key: str, note: str) -> Part:
    """A part that is not backed up, and why."""
    return Part(store, name, key, None, note=note)


@dataclass(frozen=True)
class PgTools:
    """``pg_dump`` and ``pg_restore``: on PATH, else in ``folders`` (globs; newest first)."""

    folders: tuple[str, ...] = ()

    def find(self, name: str) -> str:
        found = shutil.which(name)
        if found:
            return found
        candidates = [
            Path(match) / name
            for pattern in self.folders
            for match in glob.glob(os.path.expanduser(pattern))
        ]
        usable = [c for c in candidates if c.is_file() and os.access(c, os.X_OK)]
        if not usable:
            raise ConfigError(
                f"{name} is not on PATH nor in pg_bin {list(self.folders)}: install "
                "PostgreSQL's client tools (e.g. apt install postgresql-client) or set "
                "pg_bin=[FOLDER]"
            )
        return str(max(usable, key=lambda c: [int(n) for n in re.findall(r"\d+", str(c))]))

    def command(self, name: str, part: Part, *args: str | Path) -> tuple[list[str], dict]:
        """(argv, environment) running ``name`` on the database of ``part``: a libpq URL (no
        driver, no password) on the command line, the password in ``PGPASSWORD``."""
        url = make_url(part.where)
        env = dict(os.environ)
        if url.password is not None:
            env["PGPASSWORD"] = str(url.password)
        libpq = URL.create(
            "postgresql", url.username, None, url.host, url.port, url.database, url.query
        ).render_as_string(hide_password=False)  # no password there: nothing to hide
        return [self.find(name), f"--dbname={libpq}", *map(str, args)], env

    def run(self, name: str, part: Part, *args: str | Path) -> None:
        """Run ``name`` on the database of ``part`` (:meth:`command`); a failure is one
        error with its message."""
        command, env = self.command(name, part, *args)
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise AutomlError(
                f"{name} for {part.key} ({part.shown}) failed (exit {done.returncode}): "
                + redact_text(done.stderr.strip())
            )


# -- backing up ---------------------------------------------------------------------------


def backup(parts: list[Part], to: str | Path, tools: PgTools) -> tuple[Path, dict[str, Any]]:
    """Snapshot every part into ``to/automl-backup-<UTC time>.tar``; (archive, manifest)."""
    to = Path(to).expanduser().resolve()
    for part in parts:
        if part.kind == "folder" and to.is_relative_to(part.where):
            raise ConfigError(f"to={to} is inside {part.key} ({part.where}): pick another folder")
    if any(part.kind == "postgresql" for part in parts):
        tools.find("pg_dump")  # missing: said before anything is done
    created = datetime.now(UTC)
    archive = to / f"automl-backup-{created:%Y%m%d-%H%M%S}.tar"
    if archive.exists():
        raise AutomlError(f"{archive} exists (a backup in the same second): run it again")
    staging = temp_path(archive, directory=True)
    try:
        manifest = {
            "format": FORMAT,
            "created": created.isoformat(timespec="seconds"),
            "automl_version": version("automl"),
            "stores": snapshot_all(parts, staging, tools),
        }
        write_archive(staging, manifest, archive)
    finally:
        discard(staging)
    return archive, manifest


def snapshot_all(parts: list[Part], staging: Path, tools: PgTools) -> dict[str, Any]:
    """Snapshot the parts into ``staging``, databases first; the manifest's ``stores``."""
    stores: dict[str, dict[str, Any]] = {}
    taken: dict[str, dict[str, Any]] = {}  # database identity -> its snapshot's entry
    for part in sorted(parts, key=lambda p: p.kind == "folder"):  # stable: databases first
        source = part.shown if part.kind else None
        entry: dict[str, Any] = {"kind": part.kind, "key": part.key, "source": source}
        entry["files"] = {}
        stores.setdefault(part.store, {})[part.name] = entry
        if part.kind is None:
            entry["skipped"] = part.note
        elif part.kind == "folder":
            if Path(part.where).is_dir():
                entry["files"] = copy_folder(Path(part.where), staging, part)
            else:
                entry["skipped"] = f"no folder {part.where} (nothing stored yet)"
        elif part.identity in taken:
            entry["shares"] = taken[part.identity]["label"]
            entry["files"] = taken[part.identity]["files"]
        elif part.kind == "sqlite" and not Path(part.where).is_file():
            entry["skipped"] = f"no database {part.where} (nothing stored yet)"
        else:
            member = f"{part.store}/{part.name}{SUFFIX[part.kind]}"
            snapshot(part, staging / member, tools)
            entry["files"] = {member: describe(staging / member)}
            taken[part.identity] = {"label": part.label, "files": entry["files"]}
        if "skipped" in entry:
            log.warning("%s (%s) not backed up: %s", part.label, part.key, entry["skipped"])
        else:
            size = sum(f["size"] for f in entry["files"].values())
            log.info("%s: %s, %d file(s), %d bytes", part.label, source, len(entry["files"]), size)
    return stores


def snapshot(part: Part, target: Path, tools: PgTools) -> None:
    """A consistent copy of a live database: SQLite's online backup (one read transaction),
    or ``pg_dump --format=custom`` (one snapshot)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if part.kind == "postgresql":
        tools.run("pg_dump", part, "--format=custom", f"--file={target}")
        return
    source = sqlite3.connect(f"{Path(part.where).as_uri()}?mode=ro", uri=True, timeout=60)
    with closing(source), closing(sqlite3.connect(target)) as copy:
        source.backup(copy)
        copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file


def copy_folder(source: Path, staging: Path, part: Part) -> dict[str, dict[str, Any]]:
    """Copy the regular files under ``source`` one by one into ``staging`` (as
    ``<store>/<part>/<path>``; files removed meanwhile are skipped, links not followed);
    {member: size and hash}."""
    files = {}
    for root, dirs, names in os.walk(source):
        dirs.sort()
        for name in sorted(names):
            path = Path(root) / name
            with suppress(FileNotFoundError):
                if not stat.S_ISREG(path.lstat().st_mode):
                    continue
                member = f"{part.store}/{part.name}/{path.relative_to(source).as_posix()}"
                (staging / member).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, staging / member)
                files[member] = describe(staging / member)
    return files


def describe(path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        size, digest = copy_stream(handle)
    return {"size": size, "sha256": digest}


def copy_stream(source: IO[bytes], sink: IO[bytes] | None = None) -> tuple[int, str]:
    """(bytes, SHA-256) of ``source`` read to its end, written to ``sink`` if given."""
    digest, size = hashlib.sha256(), 0
    for block in iter(lambda: source.read(CHUNK), b""):
        digest.update(block)
        size += len(block)
        if sink is not None:
            sink.write(block)
    return size, digest.hexdigest()


def write_archive(staging: Path, manifest: dict[str, Any], archive: Path) -> None:
    """The manifest and every file it lists, as one tar: a temporary file, synced, renamed."""
    tmp = temp_path(archive, suffix=".tar")
    try:
        with tmp.open("wb") as handle:
            with tarfile.open(fileobj=handle, mode="w", format=tarfile.PAX_FORMAT) as tar:
                data = json.dumps(manifest, indent=2).encode()
                info = tarfile.TarInfo(MANIFEST)
                info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
                tar.addfile(info, io.BytesIO(data))
                for member in sorted(listed(manifest)):
                    tar.add(staging / member, arcname=member, recursive=False)
            handle.flush()
            os.fsync(handle.fileno())
        publish(tmp, archive, mode=PRIVATE)
    except BaseException:
        discard(tmp)
        raise
    descriptor = os.open(archive.parent, os.O_RDONLY)  # the rename, durable too
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# -- checking an archive ------------------------------------------------------------------


def listed(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every file the manifest lists: {member: {size, sha256}}."""
    files: dict[str, dict[str, Any]] = {}
    for parts in manifest["stores"].values():
        for entry in parts.values():
            files.update(entry.get("files") or {})
    return files


def verify(archive: str | Path) -> dict[str, Any]:
    """The manifest of ``archive``, once every file it lists is there with its size and
    SHA-256 and nothing else is (else one AutomlError naming the file). Writes nothing."""
    archive = Path(archive).expanduser()
    try:
        with tarfile.open(archive, mode="r:") as tar:
            manifest = read_manifest(tar, archive)
            expected = listed(manifest)
            members = {m.name: m for m in tar.getmembers() if m.name != MANIFEST}
            for name, member in members.items():
                if name not in expected or not member.isfile():
                    raise AutomlError(
                        f"archive {archive}: '{name}' is not a file its manifest lists: "
                        "the archive was changed; nothing was restored"
                    )
            for name, want in sorted(expected.items()):
                if name not in members:
                    raise AutomlError(
                        f"archive {archive}: '{name}' is missing: the archive is incomplete "
                        "or was changed; nothing was restored"
                    )
                with closing(tar.extractfile(members[name])) as data:
                    got = copy_stream(data)
                if got != (want["size"], want["sha256"]):
                    raise AutomlError(
                        f"archive {archive}: '{name}' does not match its SHA-256 in the "
                        "manifest: the archive is damaged or was changed; nothing was restored"
                    )
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise AutomlError(f"cannot read the archive {archive}: {exc}") from exc
    return manifest


def read_manifest(tar: tarfile.TarFile, archive: Path) -> dict[str, Any]:
    """The manifest, once its layout and every file name in it are sound."""
    try:
        with closing(tar.extractfile(MANIFEST)) as data:
            manifest = json.load(data)
        files = listed(manifest)
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise AutomlError(
            f"archive {archive} has no readable {MANIFEST}: not an automl backup ({exc})"
        ) from exc
    if manifest.get("format") != FORMAT:
        raise AutomlError(f"archive {archive}: manifest format {manifest.get('format')!r}")
    for name in files:
        path = PurePosixPath(name)
        if path.is_absolute() or ".." in path.parts or str(path) != name:
            raise AutomlError(f"archive {archive}: its manifest lists an unsafe path '{name}'")
    return manifest


# -- restoring ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One part to restore: where (``part``) and what (``entry``, the manifest's)."""

    part: Part
    entry: dict[str, Any]


def restore(archive: str | Path, parts: list[Part], tools: PgTools) -> list[str]:
    """Restore the ``parts`` (their locations: the targets) from ``archive`` once every
    file checks; the parts restored, as ``label -> where``."""
    archive = Path(archive).expanduser()
    manifest = verify(archive)
    steps = plan(manifest, parts, tools)
    undo: list[Callable[[], None]] = []
    done: dict[tuple[str, str], Part] = {}  # (snapshot, target) already restored
    try:
        with tarfile.open(archive, mode="r:") as tar:
            for step in steps:
                part, files = step.part, step.entry["files"]
                if part.kind == "folder":
                    restore_folder(tar, files, part, undo)
                elif (key := (next(iter(files)), part.identity)) not in done:
                    restore_database(tar, files, part, tools, undo)
                    done[key] = part
        for step in steps:
            relocate(step, manifest, parts)
    except BaseException:
        for action in reversed(undo):
            try:
                action()
            except Exception:  # noqa: BLE001 - the restore's own error is the one to show
                log.exception("could not remove what the failed restore wrote")
        raise
    return [f"{step.part.label} -> {step.part.shown}" for step in steps]


def plan(manifest: dict[str, Any], parts: list[Part], tools: PgTools) -> list[Step]:
    """The parts to restore (databases first), once each target is of the archive's kind,
    empty, and not claimed by another snapshot; else one error, before anything is written."""
    steps = []
    for part in parts:
        entry = manifest["stores"].get(part.store, {}).get(part.name)
        if entry is None or entry.get("skipped"):
            why = "not in the archive" if entry is None else entry["skipped"]
            log.warning("%s not restored: %s", part.label, why)
            continue
        if part.kind != entry["kind"]:
            target = part.note if part.kind is None else f"{part.kind} {part.shown}"
            raise ConfigError(
                f"{part.key}: the archive's {part.label} is {entry['kind']} "
                f"({entry['source']}), the target is {target}: give a {entry['kind']} "
                f"location, or leave {part.store} out (stores=[...])"
            )
        check_empty(part)
        if part.kind == "postgresql":
            tools.find("pg_restore")
        steps.append(Step(part, entry))
    claimed: dict[str, tuple[str, str]] = {}  # target -> (what goes there, its part)
    for step in steps:
        what = step.part.label  # a folder's files; a database's snapshot (maybe shared)
        if step.part.kind != "folder":
            what = next(iter(step.entry["files"]))
        first = claimed.setdefault(step.part.identity, (what, step.part.label))
        if first[0] != what:
            raise ConfigError(
                f"{first[1]} and {step.part.label} would both be restored into "
                f"{step.part.shown}: give each its own location"
            )
    folders = [s.part for s in steps if s.part.kind == "folder"]
    for a in folders:
        for b in folders:
            if a is not b and Path(a.where).is_relative_to(b.where):
                raise ConfigError(f"{a.key} ({a.where}) is inside {b.key} ({b.where})")
    return sorted(steps, key=lambda s: s.part.kind == "folder")


def check_empty(part: Part) -> None:
    """Refuse a target that holds anything: a restore never overwrites."""
    if part.kind == "postgresql":
        try:
            found = pg_objects(part.url)
        except sa.exc.SQLAlchemyError as exc:
            raise AutomlError(
                f"{part.key}: cannot open the database {part.shown} to restore into "
                f"({type(exc.orig or exc).__name__}): create it, empty, first"
            ) from exc
        if found:
            names = sorted(f"{schema}.{name}" for schema, name, _ in found)[:5]
            raise AutomlError(
                f"{part.key}: the database {part.shown} is not empty ({', '.join(names)}): "
                "a restore never overwrites; give an empty database"
            )
        return
    path = Path(part.where)
    held = path.exists() or path.is_symlink()
    if part.kind == "sqlite":
        held = held or any(Path(f"{path}{end}").exists() for end in ("-wal", "-journal"))
    elif path.is_dir() and not path.is_symlink():
        held = any(path.iterdir())
    if held:
        what = "exists" if part.kind == "sqlite" or not path.is_dir() else "is not empty"
        raise AutomlError(
            f"{part.key}: {path} {what}: a restore never overwrites; give an empty location "
            "(e.g. paths.output_dir=/new/place)"
        )


def restore_database(
    tar: tarfile.TarFile,
    files: dict[str, dict[str, Any]],
    part: Part,
    tools: PgTools,
    undo: list[Callable[[], None]],
) -> None:
    """The snapshot into a new SQLite file, or into an empty PostgreSQL database."""
    (member, want), *_ = files.items()
    if part.kind == "sqlite":
        path = Path(part.where)
        make_parents(path.parent, undo)
        tmp = temp_path(path)
        try:
            extract(tar, member, want, tmp)
            check_empty(part)  # nothing appeared meanwhile
            publish(tmp, path)
        except BaseException:
            discard(tmp)
            raise
        undo.append(lambda: remove_database(path))
        return
    before = pg_objects(part.url)
    undo.append(lambda: drop_new(part.url, before))
    with tempfile.TemporaryDirectory(prefix="automl-restore-") as scratch:
        dump = Path(scratch) / Path(member).name
        extract(tar, member, want, dump)
        tools.run("pg_restore", part, "--no-owner", "--single-transaction", "--exit-on-error", dump)


def restore_folder(
    tar: tarfile.TarFile,
    files: dict[str, dict[str, Any]],
    part: Part,
    undo: list[Callable[[], None]],
) -> None:
    """The files into a missing or empty folder, staged beside it and renamed into place."""
    path = Path(part.where)
    make_parents(path.parent, undo)
    existed = path.is_dir()
    tmp = temp_path(path, directory=True)
    try:
        prefix = f"{part.store}/{part.name}/"
        for member, want in files.items():
            out = tmp / member.removeprefix(prefix)
            out.parent.mkdir(parents=True, exist_ok=True)
            extract(tar, member, want, out)
        check_empty(part)
        publish(tmp, path)
    except BaseException:
        discard(tmp)
        raise
    undo.append(lambda: empty_folder(path, existed))


def remove_database(path: Path) -> None:
    for end in ("", "-wal", "-shm"):
        Path(f"{path}{end}").unlink(missing_ok=True)


def empty_folder(path: Path, keep: bool) -> None:
    """Remove ``path`` (and leave it an empty folder if ``keep``)."""
    discard(path)
    if keep:
        path.mkdir(exist_ok=True)


def extract(tar: tarfile.TarFile, member: str, want: dict[str, Any], out: Path) -> None:
    """One checked file of the archive written (and synced) to ``out``."""
    with closing(tar.extractfile(member)) as data, out.open("wb") as sink:
        got = copy_stream(data, sink)
        sink.flush()
        os.fsync(sink.fileno())
    if got != (want["size"], want["sha256"]):
        raise AutomlError(f"'{member}' changed in the archive while it was being restored")


def relocate(step: Step, manifest: dict[str, Any], parts: list[Part]) -> None:
    """Point the paths a restored database records at its store's restored folder."""
    part = step.part
    if part.relocate is None or not part.holds:
        return
    old = manifest["stores"][part.store].get(part.holds, {}).get("source")
    new = next((p for p in parts if p.store == part.store and p.name == part.holds), None)
    if old and new is not None and new.kind == "folder" and new.where != old:
        part.relocate(part.url, Path(old), Path(new.where))


def make_parents(path: Path, undo: list[Callable[[], None]]) -> None:
    """Make the folder ``path`` and its missing parents; undone by removing the first made."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(parents=True, exist_ok=True)
    if missing:
        undo.append(lambda: discard(missing[-1]))


def pg_objects(url: str) -> set[tuple[str, str, str]]:
    """(schema, name, kind) of every table, view, sequence and schema of a PostgreSQL
    database (``public`` itself left out)."""
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as db:
            return {tuple(row) for row in db.execute(PG_OBJECTS)}
    finally:
        engine.dispose()


def drop_new(url: str, before: set[tuple[str, str, str]]) -> None:
    """Drop what a failed restore made in a PostgreSQL database (all but ``before``)."""
    made = pg_objects(url) - before
    engine = sa.create_engine(url, poolclass=NullPool)
    quote = engine.dialect.identifier_preparer.quote
    try:
        with engine.begin() as db:
            for kind, what in DROP.items():
                for schema, name, _ in sorted(o for o in made if o[2] == kind):
                    target = quote(schema) if kind == "n" else f"{quote(schema)}.{quote(name)}"
                    db.exec_driver_sql(f"DROP {what} IF EXISTS {target} CASCADE")
    finally:
        engine.dispose()
