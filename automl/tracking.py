"""Experiment tracking: what a training run reports, and where.

``conf/common/tracking/`` picks the tracker (``tracking=mlflow``, the default, or
``tracking=none``); ``automl.services.training.train`` calls its ``log_run`` once the run's
artifacts are on disk. A tracker never fails a run: the run directory is the record,
the tracker a copy of it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import numbers
import os
import re
import sqlite3
import subprocess
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from automl.atomic import discard, publish, temp_path
from automl.config import sqlite_path
from automl.database import replace_prefix
from automl.redact import redact

log = logging.getLogger(__name__)

# MLflow's limits (mlflow.utils.validation), repeated so that they cost no import.
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_KEY = 250
PARAMS_PER_BATCH = 100  # params + tags in one log_batch call
METRICS_PER_BATCH = 1000
_BAD_KEY_CHARS = re.compile(r"[^\w.\- :]")


class NoTracking:
    """Tracking switched off (``tracking=none``)."""

    def log_run(
        self,
        cfg: DictConfig,
        run_dir: Path,
        metrics: dict[str, float],
        trials: pd.DataFrame,
        tags: dict[str, Any],
    ) -> str | None:
        """Record a finished training run; returns the tracker's run id (None here)."""
        return None


class MlflowTracking:
    """Log each training run to an MLflow tracking store (``tracking=mlflow``).

    One MLflow run per training run, in experiment ``experiment`` (created when missing):
    the flattened composed config as params, the metrics, the tags, and the run's
    artifacts (``model/``, ``plots/``, ``leaderboard.csv``, ``metrics.json``). The
    ``log_best_trials`` best search trials become nested child runs (their parameters
    and CV score); every trial is in the ``leaderboard.csv`` artifact.

    ``uri`` is any MLflow tracking URI: ``sqlite:///path/mlflow.db`` (a relative path is
    taken from the current directory; artifacts then go to ``mlflow-artifacts/`` beside
    the database unless ``artifact_location`` says otherwise) or ``http://host:5000``
    (the server decides where artifacts go).

    A new local SQLite store is made whole in a temporary file and renamed into place
    (:func:`create_sqlite_store`): seconds faster than MLflow making it in place.
    """

    def __init__(
        self,
        uri: str,
        experiment: str,
        log_best_trials: int = 5,
        log_artifacts: bool = True,
        artifact_location: str | None = None,
    ) -> None:
        self.uri = absolute_sqlite_uri(str(uri))
        self.experiment = experiment
        self.log_best_trials = max(int(log_best_trials), 0)
        self.log_artifacts = bool(log_artifacts)
        self.artifact_location = artifact_location

    def log_run(
        self,
        cfg: DictConfig,
        run_dir: Path,
        metrics: dict[str, float],
        trials: pd.DataFrame,
        tags: dict[str, Any],
    ) -> str | None:
        """Record a finished training run; returns the MLflow run id, or None on failure."""
        started = time.perf_counter()
        run_id = None
        client = None
        try:
            client, opened = self._open()
            logging_started = time.perf_counter()
            # jobs of a parallel sweep take turns on a SQLite store (never meet a locked file)
            with exclusive(sqlite_path(self.uri)):
                experiment_id = self._experiment_id(client)
                run_id = self._log_parent(client, experiment_id, cfg, Path(run_dir), metrics, tags)
                self._log_trials(client, experiment_id, run_id, cfg, trials, tags)
                client.set_terminated(run_id, "FINISHED")
        except Exception as exc:  # a tracking failure never loses the run
            log.warning(
                "MLflow tracking at %s failed, the run is kept in %s only: %s: %s",
                self.uri,
                run_dir,
                type(exc).__name__,
                str(exc).splitlines()[0] if str(exc) else "",
            )
            if client is not None and run_id is not None:
                with contextlib.suppress(Exception):  # best effort, on a store that failed
                    client.set_terminated(run_id, "FAILED")
            return None
        done = time.perf_counter()
        log.info(
            "MLflow run %s logged to %s (experiment %r) in %.2fs (import %.2fs, store %.2fs, "
            "logging %.2fs)",
            run_id,
            self.uri,
            self.experiment,
            done - started,
            opened["import"],
            opened["store"],
            done - logging_started,
        )
        return run_id

    # -- opening the store ------------------------------------------------------------

    def _open(self) -> tuple[Any, dict[str, float]]:
        """An MLflow client on the store (created when missing), and the seconds its
        import and its store took."""
        started = time.perf_counter()
        # MLflow 3 reports usage over the network unless told not to; a user opts in.
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        from mlflow import MlflowClient  # lazily: tracking=none never imports mlflow

        imported = time.perf_counter()
        database = sqlite_path(self.uri)
        if database is not None:
            database.parent.mkdir(parents=True, exist_ok=True)
        # MLflow creates a new SQLite store without a lock: jobs of a parallel sweep
        # would race on its tables, so they take turns (and never meet a locked file).
        with exclusive(database) as locked:
            if database is not None and locked and not database.exists():
                create_sqlite_store(database, MlflowClient)
            client = MlflowClient(tracking_uri=self.uri)
        return client, {"import": imported - started, "store": time.perf_counter() - imported}

    # -- the pieces -------------------------------------------------------------------

    def _experiment_id(self, client: Any) -> str:
        """The experiment's id; created (with its artifact location) when missing."""
        from mlflow.exceptions import MlflowException

        found = client.get_experiment_by_name(self.experiment)
        if found is None:
            try:
                return client.create_experiment(
                    self.experiment, artifact_location=self._artifact_location()
                )
            except MlflowException:  # created meanwhile by a parallel job of a sweep
                found = client.get_experiment_by_name(self.experiment)
                if found is None:
                    raise
        if found.lifecycle_stage == "deleted":
            client.restore_experiment(found.experiment_id)
        return found.experiment_id

    def _artifact_location(self) -> str | None:
        """Where a new experiment keeps its artifacts: beside a local SQLite database."""
        location = str(self.artifact_location or "")
        if "://" in location or location.startswith("file:"):
            return location
        root = local_artifacts(self.uri, location or None)
        if root is None:
            return None  # a server (or another store) picks its default
        if location:
            return root.as_uri()
        folder = re.sub(r"[^\w.\-]", "_", self.experiment) or "experiment"
        return (root / folder).as_uri()

    def _log_parent(
        self,
        client: Any,
        experiment_id: str,
        cfg: DictConfig,
        run_dir: Path,
        metrics: dict[str, float],
        tags: dict[str, Any],
    ) -> str:
        run_tags = {str(k): str(v) for k, v in tags.items()}
        run_tags["run_dir"] = str(run_dir.resolve())
        commit = git_commit()
        if commit:
            run_tags["git_commit"] = commit
            run_tags["mlflow.source.git.commit"] = commit
        run = client.create_run(experiment_id, run_name=run_dir.name, tags=clean_tags(run_tags))
        run_id = run.info.run_id
        params = flatten(redact(OmegaConf.to_container(cfg, resolve=True)))
        log_batches(client, run_id, params=params, metrics=metrics)
        if self.log_artifacts:
            for folder in ("model", "plots"):
                if (run_dir / folder).is_dir():
                    client.log_artifacts(run_id, str(run_dir / folder), folder)
            for name in ("leaderboard.csv", "metrics.json"):
                if (run_dir / name).is_file():
                    client.log_artifact(run_id, str(run_dir / name))
        return run_id

    def _log_trials(
        self,
        client: Any,
        experiment_id: str,
        parent_id: str,
        cfg: DictConfig,
        trials: pd.DataFrame,
        tags: dict[str, Any],
    ) -> None:
        """The best ``log_best_trials`` complete trials, as child runs of ``parent_id``."""
        if not self.log_best_trials or trials is None or trials.empty:
            return
        best = trials
        if "state" in best:
            best = best[best["state"].astype(str) == "COMPLETE"]
        best = best.dropna(subset=["value"]).sort_values("value", ascending=False)
        scoring = str(OmegaConf.select(cfg, f"evaluation.cv_metric.{tags.get('task')}") or "")
        cv_key = "cv_" + scoring.removeprefix("neg_") if scoring else "cv_score"
        for _, trial in best.head(self.log_best_trials).iterrows():
            number = int(trial["number"])
            child_tags = {
                "mlflow.parentRunId": parent_id,
                "trial_number": str(number),
                **{str(k): str(v) for k, v in tags.items()},
            }
            child = client.create_run(
                experiment_id, run_name=f"trial-{number}", tags=clean_tags(child_tags)
            )
            value = float(trial["value"])
            child_metrics = {
                cv_key: abs(value) if scoring.startswith("neg_") else value,
                "cv_score": value,
            }
            params = {}
            for column, cell in trial.items():
                if is_missing(cell):
                    continue
                if column.startswith("params_"):
                    params[column.removeprefix("params_")] = cell
                elif column.startswith("user_attrs_") and is_number(cell):
                    child_metrics[column.removeprefix("user_attrs_")] = float(cell)
            if "duration" in trial and isinstance(trial["duration"], pd.Timedelta):
                child_metrics["duration_seconds"] = trial["duration"].total_seconds()
            log_batches(client, child.info.run_id, params=params, metrics=child_metrics)
            client.set_terminated(child.info.run_id, "FINISHED")


# -- helpers ----------------------------------------------------------------------------


def absolute_sqlite_uri(uri: str) -> str:
    """``uri`` with a relative SQLite path made absolute (from the current directory)."""
    database = sqlite_path(uri)
    if database is None:
        return uri
    _, sep, query = uri.partition("?")
    return "sqlite:///" + database.as_posix() + sep + query


ARTIFACTS = "mlflow-artifacts"  # beside a SQLite store: the default artifact folder
# where MLflow's tables record artifact locations (absolute URIs)
ARTIFACT_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("logged_models", "artifact_location"),
    ("model_versions", "source"),
    ("model_versions", "storage_location"),
)


def local_artifacts(uri: str, artifact_location: str | None = None) -> Path | None:
    """The local folder holding the artifacts of the store at ``uri``: ``artifact_location``
    when it is a path or ``file:`` URI, else ``mlflow-artifacts/`` beside an SQLite store;
    None when a server or remote storage keeps them."""
    if artifact_location:
        location = str(artifact_location)
        if location.startswith("file:"):
            return Path(urlparse(location).path)
        return None if "://" in location else Path(location).expanduser().resolve()
    database = sqlite_path(absolute_sqlite_uri(str(uri)))
    return None if database is None else database.parent / ARTIFACTS


def relocate_artifacts(url: str, old: Path, new: Path) -> None:
    """Point the artifact locations recorded in the MLflow database at ``url`` (a
    SQLAlchemy URL) under the folder ``old`` at the same places under ``new`` (a restored
    copy of the store, elsewhere)."""
    replace_prefix(url, ARTIFACT_COLUMNS, old.as_uri(), new.as_uri())


def create_sqlite_store(database: Path, client_class: Any) -> None:
    """Create a new MLflow store at ``database`` (a SQLite file that does not exist),
    holding its lock (:func:`exclusive`).

    MLflow makes a new store with its schema migrations, hundreds of statements that each
    wait for the disk (seconds). Here they run in a temporary file beside ``database``
    with SQLite's disk syncs off, then the file is synced once and renamed into place:
    ``database`` is never half-made.
    """
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    tmp = temp_path(database)
    entries: list[Any] = []

    def unsynced(connection: Any, entry: Any) -> None:
        """The temporary file's connections: no disk syncs, the journal in memory."""
        if not isinstance(connection, sqlite3.Connection):
            return
        files = [row[2] for row in connection.execute("PRAGMA database_list")]
        if files and files[0] and os.path.realpath(files[0]) == os.path.realpath(tmp):
            connection.execute("PRAGMA synchronous=OFF")
            connection.execute("PRAGMA journal_mode=MEMORY")
            entries.append(entry)

    try:
        event.listen(Engine, "connect", unsynced)
        try:
            client_class(tracking_uri="sqlite:///" + tmp.as_posix())  # the tables, in tmp
        finally:
            event.remove(Engine, "connect", unsynced)
            for entry in entries:
                entry.invalidate()  # closes the temporary file's connections
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        if not database.exists():  # made meanwhile by a process without the lock: kept
            publish(tmp, database)
    finally:
        discard(tmp)


@contextlib.contextmanager
def exclusive(database: Path | None, wait: float = 120.0) -> Iterator[bool]:
    """Hold ``<database>.lock`` (between processes of this machine) while the block runs;
    yields whether the lock is held.

    No lock for a server URI, where fcntl is missing (Windows), or after ``wait`` seconds.
    """
    if database is None:
        yield False
        return
    try:
        import fcntl
    except ImportError:
        yield False
        return
    with open(database.with_name(database.name + ".lock"), "a") as handle:
        deadline = time.monotonic() + wait
        locked = False
        while not locked:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
            except BlockingIOError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        try:
            yield locked
        finally:
            if locked:
                fcntl.flock(handle, fcntl.LOCK_UN)


def git_commit() -> str | None:
    """The current directory's git commit, or None outside a git work tree."""
    return commit_at(os.getcwd())


@functools.lru_cache(maxsize=8)
def commit_at(folder: str) -> str | None:
    """The git commit of ``folder`` (asked once per process: the manifest and the tracker
    both record it)."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
            cwd=folder,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None


def flatten(node: Any, prefix: str = "") -> dict[str, str]:
    """A nested config as {dotted key: value as text}; lists are kept as one value."""
    if isinstance(node, dict):
        flat: dict[str, str] = {}
        for key, value in node.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict) and value:
                flat.update(flatten(value, name))
            else:
                flat[name] = "null" if value is None else str(value)
        return flat
    return {prefix or "value": str(node)}


def clean_key(key: str) -> str:
    """A key MLflow accepts: allowed characters only, no path tricks, at most 250 long."""
    key = _BAD_KEY_CHARS.sub("_", str(key)).strip() or "_"
    if key.startswith("."):  # "." and "..x" read as paths
        key = "_" + key
    return key[:MAX_KEY]


def clip(value: Any, limit: int) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def clean_tags(tags: dict[str, str]) -> dict[str, str]:
    # keys such as mlflow.parentRunId are already valid and must keep their exact name
    return {clean_key(k): clip(v, MAX_TAG_VALUE) for k, v in tags.items()}


def is_missing(value: Any) -> bool:
    if value is None or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def log_batches(
    client: Any,
    run_id: str,
    params: dict[str, Any] | None = None,
    metrics: dict[str, float] | None = None,
) -> None:
    """Params and metrics in as few ``log_batch`` calls as MLflow's batch limits allow."""
    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    param_list = [Param(k, clip(v, MAX_PARAM_VALUE)) for k, v in unique(params or {})]
    metric_list = [Metric(k, float(v), now, 0) for k, v in unique(metrics or {}) if is_number(v)]
    param_batches = list(chunks(param_list, PARAMS_PER_BATCH)) or [[]]
    metric_batches = list(chunks(metric_list, METRICS_PER_BATCH)) or [[]]
    for i in range(max(len(param_batches), len(metric_batches))):
        batch_params = param_batches[i] if i < len(param_batches) else []
        batch_metrics = metric_batches[i] if i < len(metric_batches) else []
        if batch_params or batch_metrics:
            client.log_batch(run_id, metrics=batch_metrics, params=batch_params)


def unique(items: dict[str, Any]) -> Iterable[tuple[str, Any]]:
    """Items under cleaned keys; a key that cleans to one already seen is dropped."""
    seen: set[str] = set()
    for key, value in items.items():
        name = clean_key(key)
        if name not in seen:
            seen.add(name)
            yield name, value
