"""The prediction log: every served prediction (and later its true label), for monitoring.

The server hands each request's records to ``PredictionLogger.log``, which only puts them
on a queue; a background thread writes them to the store in batches (``batch_size`` rows
or every ``flush_seconds``), so the request path never waits for a disk. Labels sent to
the feedback endpoint take the same way, each tied to the model and version that made the
prediction (the server accepts feedback only for predictions its log holds). A record the
store refuses is counted and skipped (``on_failure``), never the batch around it; ``close``
writes everything queued. Stores (``prediction_log.store``, the ``prediction_log`` group
of ``conf/common/``): ``SqliteStore`` (one file), ``SqlStore`` (any database URL, e.g.
PostgreSQL, shared by servers on several machines) and ``ParquetStore`` (a folder of
Parquet files, one per batch).

Read it back with ``read_log`` (the format monitoring relies on).
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from automl.atomic import staged
from automl.config import build
from automl.database import open_database

log = logging.getLogger(__name__)
FIELDS = ["request_id", "row", "ts", "model", "version", "inputs", "prediction", "proba"]
FEEDBACK = ["request_id", "row", "label", "ts", "model", "version"]
RETRY_SECONDS = 0.5  # the wait before a failed batch is tried again (a locked database)


def dumps(value: Any) -> str:
    """JSON for logged values (numpy scalars as numbers, NaN kept as NaN)."""
    return json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v))


TABLES = sa.MetaData()
PREDICTIONS = sa.Table(
    "predictions",
    TABLES,
    sa.Column("request_id", sa.Text, nullable=False),
    sa.Column("row", sa.Integer, nullable=False),
    sa.Column("ts", sa.Double, nullable=False),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("inputs", sa.Text, nullable=False),
    sa.Column("prediction", sa.Text, nullable=False),
    sa.Column("proba", sa.Text),
    sa.Index("predictions_model_ts", "model", "ts"),
    sa.Index("predictions_request", "request_id", "row"),
)
LABELS = sa.Table(
    "feedback",
    TABLES,
    sa.Column("request_id", sa.Text, nullable=False),
    sa.Column("row", sa.Integer, nullable=False),
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("ts", sa.Double, nullable=False),
    sa.Column("model", sa.Text),
    sa.Column("version", sa.Integer),
    sa.Index("feedback_request", "request_id", "row"),
)
IN_CHUNK = 500  # request ids per IN (...) query


class SqlStore:
    """The log in a database, any SQLAlchemy URL (``postgresql+psycopg://...``,
    ``sqlite:///...``): tables ``predictions`` and ``feedback``, made on first use."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: sa.Engine | None = None
        self._lock = threading.Lock()

    @property
    def engine(self) -> sa.Engine:
        """The engine, its tables made (and an older SQLite log's brought up to date) once."""
        with self._lock:
            if self._engine is None:
                self._engine = open_database(self.url)
                with self._engine.begin() as db:
                    self.prepare(db)
            return self._engine

    def prepare(self, db: sa.Connection) -> None:
        TABLES.create_all(db)

    def write(self, rows: list[tuple], feedback: list[tuple]) -> None:
        with self.engine.begin() as db:
            if rows:
                db.execute(PREDICTIONS.insert(), [dict(zip(FIELDS, r)) for r in rows])
            if feedback:
                db.execute(LABELS.insert(), [dict(zip(FEEDBACK, f)) for f in feedback])

    def issued(self, model: str, keys: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """{(request_id, row): version} of the ``keys`` logged as predictions of ``model``."""
        wanted, found = set(keys), {}
        ids = sorted({rid for rid, _ in keys})
        p = PREDICTIONS.c
        with self.engine.connect() as db:
            for start in range(0, len(ids), IN_CHUNK):
                chunk = ids[start : start + IN_CHUNK]
                query = sa.select(p.request_id, p.row, p.version).where(
                    p.model == model, p.request_id.in_(chunk)
                )
                for rid, row, version in db.execute(query):
                    if (rid, row) in wanted:
                        found[(rid, row)] = int(version)
        return found

    def read(
        self, model: str, version: int | None, last: int | None, since: float | None
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        p, f = PREDICTIONS.c, LABELS.c
        query = sa.select(PREDICTIONS).where(p.model == model)
        if version is not None:
            query = query.where(p.version == version)
        if since is not None:
            query = query.where(p.ts >= since)
        order = [p.ts, p.request_id, p.row]
        if last is not None:
            query = query.order_by(*(c.desc() for c in order)).limit(last)
        else:
            query = query.order_by(*order)
        with self.engine.connect() as db:
            rows = pd.read_sql_query(query, db).iloc[:: -1 if last is not None else 1]
            ids = rows["request_id"].unique().tolist()
            parts = [
                pd.read_sql_query(  # labels of this model (or older untied ones)
                    sa.select(LABELS).where(
                        sa.or_(f.model == model, f.model.is_(None)),
                        f.request_id.in_(ids[start : start + IN_CHUNK]),
                    ),
                    db,
                )
                for start in range(0, len(ids), IN_CHUNK)
            ]
        labels = pd.concat(parts) if parts else pd.DataFrame(columns=FEEDBACK)
        return rows.reset_index(drop=True), labels


class SqliteStore(SqlStore):
    """The log in one SQLite file (WAL): ``SqlStore`` on ``sqlite:///<path>``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        super().__init__(f"sqlite:///{self.path}")

    def prepare(self, db: sa.Connection) -> None:
        super().prepare(db)  # (open_database made the file's folder)
        have = {c["name"] for c in sa.inspect(db).get_columns("feedback")}
        for column, kind in (("model", "TEXT"), ("version", "INTEGER")):  # an older log file
            if column not in have:
                db.exec_driver_sql(f"ALTER TABLE feedback ADD COLUMN {column} {kind}")


class ParquetStore:
    """The log as Parquet files: ``<path>/predictions/*.parquet``, ``<path>/feedback/*``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()

    def append(self, kind: str, frame: pd.DataFrame) -> None:
        name = f"part-{time.time_ns()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"
        with staged(self.path / kind / name, suffix=".parquet") as tmp:
            frame.to_parquet(tmp, index=False)

    def write(self, rows: list[tuple], feedback: list[tuple]) -> None:
        if rows:
            self.append("predictions", pd.DataFrame(rows, columns=FIELDS))
        if feedback:
            self.append("feedback", pd.DataFrame(feedback, columns=FEEDBACK))

    def frame(self, kind: str, columns: list[str], filters: list | None = None) -> pd.DataFrame:
        files = sorted((self.path / kind).glob("part-*.parquet"))
        if not files:
            return pd.DataFrame(columns=columns)
        return pd.read_parquet(files, filters=filters)

    def read(
        self, model: str, version: int | None, last: int | None, since: float | None
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        filters = [("model", "==", model)]
        if version is not None:
            filters.append(("version", "==", version))
        if since is not None:
            filters.append(("ts", ">=", since))
        rows = self.frame("predictions", FIELDS, filters)
        rows = rows.sort_values(["ts", "request_id", "row"], kind="stable")
        if last is not None:
            rows = rows.tail(last)
        files = sorted((self.path / "feedback").glob("part-*.parquet"))
        labels = (
            pd.read_parquet(files, schema=FEEDBACK_SCHEMA)
            if files
            else pd.DataFrame(columns=FEEDBACK)
        )  # the schema given: older parts (without model, version) read as nulls there
        labels = labels[labels["model"].isna() | (labels["model"] == model)]  # this model's
        return rows, labels[labels["request_id"].isin(set(rows["request_id"]))]

    def issued(self, model: str, keys: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """{(request_id, row): version} of the ``keys`` logged as predictions of ``model``."""
        wanted = set(keys)
        ids = sorted({rid for rid, _ in keys})
        rows = self.frame(
            "predictions", FIELDS, [("model", "==", model), ("request_id", "in", ids)]
        )
        return {
            (rid, int(row)): int(version)
            for rid, row, version in zip(rows["request_id"], rows["row"], rows["version"])
            if (rid, int(row)) in wanted
        }


FEEDBACK_SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("row", pa.int64()),
        ("label", pa.string()),
        ("ts", pa.float64()),
        ("model", pa.string()),
        ("version", pa.int64()),
    ]
)


def open_store(store: Any) -> Any:
    """A store from a config node (``_target_``), a store, a database URL, or a path (a
    ``.db``/``.sqlite`` file: SQLite; otherwise a folder of Parquet files)."""
    if hasattr(store, "read") and hasattr(store, "write"):
        return store
    if isinstance(store, str) and "://" in store:
        return SqlStore(store)
    if isinstance(store, str | Path):
        path = Path(store)
        return SqliteStore(path) if path.suffix in (".db", ".sqlite") else ParquetStore(path)
    return build(store)


def read_log(
    store_config_or_path: Any,
    model: str,
    version: int | None = None,
    last: int | None = None,
    since_seconds: float | None = None,
) -> pd.DataFrame:
    """The logged predictions of ``model``: one row per predicted record, oldest first.

    ``store_config_or_path``: the ``prediction_log.store`` node of the serve config (or a
    dict with ``_target_``), or a path (``*.db``/``*.sqlite``: SQLite; a folder: Parquet).
    ``version`` keeps one version; ``last`` the newest N records; ``since_seconds`` those
    logged in the last N seconds.

    Columns, in this order: ``request_id`` (str, as returned in the response and the
    ``X-Request-ID`` header), ``ts`` (float, unix seconds), ``model`` (str), ``version``
    (int), then the input feature columns under their original names (as the request sent
    them; a column some requests lacked is NaN there), ``prediction`` (class label, or value
    for regression), ``proba_<class>`` per class (classification only) and ``label`` (the
    true label sent to the feedback endpoint, NaN until then; the latest one wins).
    """
    store = open_store(store_config_or_path)
    since = None if since_seconds is None else time.time() - since_seconds
    rows, labels = store.read(model, version, last, since)
    head = ["request_id", "ts", "model", "version"]
    inputs = pd.DataFrame.from_records(
        [json.loads(v) for v in rows["inputs"]], index=rows.index
    ).reindex(index=rows.index)
    out = rows[head].astype({"ts": float, "version": int})
    out = pd.concat([out, inputs], axis=1)
    out["prediction"] = [json.loads(v) for v in rows["prediction"]]
    probas = [json.loads(v) if isinstance(v, str) else None for v in rows["proba"]]
    if any(p is not None for p in probas):
        proba = pd.DataFrame.from_records([p or {} for p in probas], index=rows.index)
        for cls in proba.columns:
            out[f"proba_{cls}"] = proba[cls].astype(float)
    out["label"] = np.nan
    if len(labels):
        latest = labels.sort_values("ts").drop_duplicates(["request_id", "row"], keep="last")
        keys = pd.MultiIndex.from_arrays([latest["request_id"], latest["row"].astype(int)])
        found = pd.Series([json.loads(v) for v in latest["label"]], index=keys, dtype=object)
        wanted = pd.MultiIndex.from_arrays([rows["request_id"], rows["row"].astype(int)])
        out["label"] = found.reindex(wanted).to_numpy(dtype=object)
        out["label"] = out["label"].where(out["label"].notna(), np.nan)
    return out.reset_index(drop=True)


class PredictionLogger:
    """A queue and a writer thread: ``log`` and ``feedback`` return at once.

    The queue is bounded in records (``queue_size``), not requests: a request whose records
    would take it past the bound is dropped whole and counted. ``on_failure(reason, n)`` is
    told of records lost: ``"queue_full"`` (dropped at the door) or ``"unwritable"``
    (refused by the store twice; the rest of the batch is written).
    """

    def __init__(self, cfg: Any, on_failure: Callable[[str, int], None] | None = None) -> None:
        self.store = open_store(cfg.store)
        self.batch_size = int(cfg.batch_size)
        self.flush_seconds = float(cfg.flush_seconds)
        self.items: deque[tuple] = deque()  # requests append, the thread takes (no wake-up
        # per request: the thread is woken when a batch is due, on sync and on close)
        self.wake = threading.Event()
        self.max_queued = int(cfg.queue_size)
        self.queued = 0  # records on the queue
        self.lock = threading.Lock()
        self.on_failure = on_failure
        self.dropped = 0
        self.warned = -math.inf
        self.failures = 0
        self.thread = threading.Thread(target=self.run, name="prediction-log", daemon=True)
        self.thread.start()

    def log(
        self,
        request_id: str,
        model: str,
        version: int,
        inputs: list[dict] | pd.DataFrame,
        predictions: list,
        proba: np.ndarray | None,
        classes: list[str] | None,
    ) -> None:
        """Queue one request's records (never blocks; drops and counts when full)."""
        entry = (request_id, time.time(), model, version, inputs, predictions, proba, classes)
        self.put(("p", *entry), len(inputs))

    def feedback(self, items: list[tuple[str, int, Any, str, int]]) -> None:
        """Queue true labels: (request_id, row, label, model, version) each."""
        self.put(("f", time.time(), items), len(items))

    def put(self, item: tuple, records: int) -> None:
        """Queue ``item`` of ``records`` records, unless that passes ``queue_size``."""
        with self.lock:
            full = self.queued + records > self.max_queued
            if full:
                self.dropped += records
            else:
                self.queued += records
                self.items.append(item)
            due = self.queued >= self.batch_size
        if due:
            self.wake.set()
        if full:
            self.count("queue_full", records)
            if time.monotonic() - self.warned > 10:  # at most one line per 10 s
                self.warned = time.monotonic()
                log.warning("prediction log queue full: %d records dropped so far", self.dropped)

    def taken(self, item: tuple) -> None:
        """``item`` left the queue (its records no longer count against ``queue_size``)."""
        with self.lock:
            self.queued -= len(item[5]) if item[0] == "p" else len(item[2])

    def count(self, reason: str, n: int) -> None:
        """Tell ``on_failure`` of ``n`` lost records (its own failure is only logged)."""
        if reason != "queue_full":
            self.failures += n
        if self.on_failure is not None and n:
            try:
                self.on_failure(reason, n)
            except Exception:
                log.exception("prediction log: on_failure failed")

    def records(self, item: tuple) -> list[tuple]:
        """The store's rows for one queued entry ([] and counted when it cannot be read)."""
        try:
            if item[0] == "p":
                return expand(item)
            _, ts, items = item
            return [
                (str(rid), int(row), dumps(label), ts, str(model), int(version))
                for rid, row, label, model, version in items
            ]
        except Exception:
            log.exception("prediction log: skipped an entry that cannot be written")
            self.count("unwritable", max(1, len(item[-1]) if item[0] == "f" else 1))
            return []

    def run(self) -> None:
        """Write what is queued every ``flush_seconds``, or as soon as ``batch_size``
        records wait, a ``sync`` asks or ``close`` comes."""
        rows: list[tuple] = []
        feedback: list[tuple] = []
        deadline = time.monotonic() + self.flush_seconds
        stop = False
        while not stop:
            self.wake.wait(max(0.0, deadline - time.monotonic()))
            self.wake.clear()
            synced = []
            while self.items:
                item = self.items.popleft()
                if item[0] in "pf":
                    self.taken(item)
                    (rows if item[0] == "p" else feedback).extend(self.records(item))
                elif item[0] == "sync":
                    synced.append(item[1])
                else:  # close
                    stop = True
            now = time.monotonic()
            pending = len(rows) + len(feedback)
            if pending and (now >= deadline or synced or stop or pending >= self.batch_size):
                self.flush(rows, feedback)
                rows, feedback = [], []
            if now >= deadline:
                deadline = now + self.flush_seconds
            for done in synced:
                done.set()

    def flush(self, rows: list[tuple], feedback: list[tuple]) -> None:
        """Write a batch; tried twice, then in halves so that only bad records are lost."""
        for attempt in (1, 2):
            try:
                self.store.write(rows, feedback)
                return
            except Exception as exc:  # the log must never take the server down
                log.warning("prediction log: write failed (attempt %d): %s", attempt, exc)
                if attempt == 1:
                    time.sleep(RETRY_SECONDS)
        parts = [("p", r) for r in rows] + [("f", f) for f in feedback]
        half = len(parts) // 2
        lost = self.isolate(parts[:half]) + self.isolate(parts[half:])
        self.count("unwritable", lost)

    def isolate(self, parts: list[tuple[str, tuple]]) -> int:
        """Write ``parts`` (("p" or "f", record)), splitting around failures: records lost."""
        if not parts:
            return 0
        try:
            self.store.write(*split(parts))
            return 0
        except Exception:
            if len(parts) == 1:
                log.exception("prediction log: could not write a record: %s", parts[0][1][:2])
                return 1
        half = len(parts) // 2
        return self.isolate(parts[:half]) + self.isolate(parts[half:])

    def sync(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is written (for reading the log back);
        False when that did not happen within ``timeout`` seconds."""
        done = threading.Event()
        self.items.append(("sync", done))
        self.wake.set()
        return done.wait(timeout)

    def close(self, timeout: float | None = None) -> None:
        """Write everything queued and stop the thread (waiting at most ``timeout`` s)."""
        self.items.append(("close",))
        self.wake.set()
        self.thread.join(timeout)
        if self.thread.is_alive():
            log.error("prediction log: %d records not written at shutdown", self.queued)


def split(parts: Iterable[tuple[str, tuple]]) -> tuple[list[tuple], list[tuple]]:
    """(prediction rows, feedback rows) of tagged records."""
    parts = list(parts)
    return [r for kind, r in parts if kind == "p"], [r for kind, r in parts if kind == "f"]


def expand(item: tuple) -> list[tuple]:
    """One logged request as one row per record."""
    _, request_id, ts, model, version, inputs, predictions, proba, classes = item
    if isinstance(inputs, pd.DataFrame):  # a columnar body: its records, made here (off
        inputs = inputs.to_dict("records")  # the request path)
    rows = []
    for i, (record, prediction) in enumerate(zip(inputs, predictions)):
        probs = None if proba is None else dumps(dict(zip(classes, proba[i].tolist())))
        rows.append((request_id, i, ts, model, version, dumps(record), dumps(prediction), probs))
    return rows
