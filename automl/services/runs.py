"""Training runs, read from the run folders training writes (``runs/<date>/<time>_<dataset>_
<family>/`` and ``sweeps/<date>/<time>/<n>_<dataset>_<family>/``; see
:func:`automl.services.training.train`).

:class:`RunIndex` keeps a small summary of every run folder (a folder with
``.hydra/config.yaml``): its project, data set, family, task, status, start, duration,
budget and test metrics, read from ``model/manifest.json`` and ``metrics.json`` (the YAML
config only when they are missing). Summaries are cached by folder and modification time,
so a rescan of thousands of unchanged runs costs one directory walk, and the folders are
walked at most every ``refresh_seconds``. Runs are found by their id (the folder's path
under the output folder, e.g. ``runs/2026-11-30/20-18-13-777934_breast_cancer_lgbm``):
nothing outside the index is ever read.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import threading
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

CONFIG = Path(".hydra") / "config.yaml"  # what makes a folder a run folder
MANIFEST = Path("model") / "manifest.json"
METRICS = "metrics.json"
TABLES = ("leaderboard", "families", "ensemble")  # <name>.csv of a run
PLOTS = "plots"
LOG = "train.log"
MAX_DEPTH = 4  # folders below a runs folder searched for runs (sweeps: <date>/<time>/<job>)
COLUMNS = (  # the summary fields a query can sort by (besides any metric)
    "id",
    "project",
    "dataset",
    "family",
    "task",
    "status",
    "started",
    "duration",
    "time_budget",
    "n_trials",
)
COMPLETE, INCOMPLETE = "complete", "incomplete"
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
TIME = re.compile(r"^(\d{2})-(\d{2})-(\d{2})(?:-\d+)?(?:_|$)")
TRACKING = "tracking.json"
LOWER_IS_BETTER = re.compile(r"loss|error|rmse|mae|mse|mape|brier|seconds")
LOG_TAIL_BYTES = 8192
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
Stamp = tuple[int, int, int]  # run folder mtime; metrics.json mtime and size


@dataclass(frozen=True)
class RunSummary:
    """What the runs table shows of one run."""

    id: str
    path: Path = field(repr=False)
    project: str | None
    dataset: str | None
    family: str | None
    task: str | None
    status: str  # complete | incomplete (no metrics.json: still running, or failed)
    started: str  # local time, "YYYY-MM-DD HH:MM:SS"
    duration: float | None  # train_seconds
    time_budget: float | None
    n_trials: int | None
    metrics: dict[str, float] = field(default_factory=dict)  # test and cv_* metrics

    def value(self, column: str) -> Any:
        """A summary field (one of :data:`COLUMNS`) or a metric; None when absent."""
        if column in COLUMNS:
            return getattr(self, column)
        return self.metrics.get(column)

    @property
    def name(self) -> str:
        """A short name: the id without its runs folder and date."""
        parts = self.id.split("/")[1:]
        return "/".join(parts[1:] if len(parts) > 1 and DATE.match(parts[0]) else parts)

    @cached_property
    def text(self) -> str:
        """What the text filter searches: id, project, data set, family and task."""
        fields = (self.id, self.project, self.dataset, self.family, self.task)
        return " ".join(str(v) for v in fields if v).lower()


@dataclass(frozen=True)
class RunDetails:
    """One run in full: its summary, config, tables, plots and log tail."""

    summary: RunSummary
    config: str  # .hydra/config.yaml as written
    tables: dict[str, list[dict[str, Any]]]  # leaderboard / families / ensemble: first rows
    table_rows: dict[str, int]  # each table's total number of rows
    plots: list[str]  # PNG names under plots/
    log_tail: str
    mlflow: dict[str, str] | None  # {"run_id", "experiment", "uri"} when it was tracked

    @property
    def id(self) -> str:
        return self.summary.id

    def config_tree(self) -> dict[str, Any]:
        """The config as nested mappings (empty when it cannot be read)."""
        try:
            tree = yaml.load(self.config, Loader=YAML_LOADER)
        except yaml.YAMLError:
            return {}
        return tree if isinstance(tree, dict) else {}


class RunIndex:
    """The runs under some folders (each folder's runs get ids ``<folder name>/...``).

    With ``warm`` the first scan starts at once in a background thread, so the first page
    does not wait for it (a query meanwhile waits for that scan, never starts another).
    """

    def __init__(
        self, folders: list[Path], refresh_seconds: float = 5.0, warm: bool = True
    ) -> None:
        self.folders = [Path(f) for f in folders]
        self.roots = [f.expanduser().resolve() for f in self.folders]  # as the registry records
        self.refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[Stamp, RunSummary]] = {}
        self._runs: dict[str, RunSummary] = {}
        self._scanned_at: float | None = None
        if warm:
            threading.Thread(target=self.refresh, name="runs-index", daemon=True).start()

    # --- scanning ---

    def refresh(self, force: bool = False) -> None:
        """Walk the folders again, when ``refresh_seconds`` have passed (or ``force``)."""
        with self._lock:
            due = self._scanned_at is None or (
                time.monotonic() - self._scanned_at >= self.refresh_seconds
            )
            if not (due or force):
                return
            found: dict[str, tuple[Stamp, RunSummary]] = {}
            for folder in self.folders:
                self._walk(str(folder), folder.name, 1, found)
            self._cache = found
            self._runs = {run_id: summary for run_id, (_, summary) in found.items()}
            self._scanned_at = time.monotonic()

    def _walk(
        self, path: str, prefix: str, depth: int, found: dict[str, tuple[Stamp, RunSummary]]
    ) -> None:
        """Add the run folders under ``path`` to ``found``: a cached summary while its
        stamp holds, else one read now (not following links)."""
        try:
            with os.scandir(path) as entries:
                children = [
                    e
                    for e in entries
                    if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)
                ]
        except OSError:
            return
        for entry in sorted(children, key=lambda e: e.name):
            run_id = f"{prefix}/{entry.name}"
            if run_id in found:
                continue  # two runs folders of the same name: the first wins
            try:
                folder_time = entry.stat(follow_symlinks=False).st_mtime_ns
            except OSError:
                continue
            cached = self._cache.get(run_id)
            if cached is not None and still_valid(cached, folder_time, entry.path):
                found[run_id] = cached
            elif os.path.isfile(os.path.join(entry.path, CONFIG)):
                stamp = (folder_time, *metrics_stamp(entry.path))
                found[run_id] = (stamp, read_summary(run_id, Path(entry.path)))
            elif depth < MAX_DEPTH:
                self._walk(entry.path, run_id, depth + 1, found)

    def id_of(self, run_dir: str | Path | None) -> str | None:
        """The id of the run in the folder ``run_dir`` (as the registry records it), or
        None when it is not one of the index's runs."""
        if not run_dir:
            return None
        path = Path(str(run_dir))
        for folder, root in zip(self.folders, self.roots, strict=True):
            if path.is_relative_to(root):
                run_id = f"{folder.name}/{path.relative_to(root).as_posix()}"
                return run_id if self.summary(run_id) is not None else None
        return None

    def runs(self) -> list[RunSummary]:
        """Every run (after a refresh when one is due)."""
        self.refresh()
        return list(self._runs.values())

    # --- reads ---

    def summary(self, run_id: str) -> RunSummary | None:
        """The summary of the run ``run_id`` names, or None (an id, never a path)."""
        self.refresh()
        return self._runs.get(run_id)

    def matching(
        self,
        projects: Collection[str] | None = None,
        dataset: str | None = None,
        family: str | None = None,
        status: str | None = None,
        text: str | None = None,
    ) -> list[RunSummary]:
        """The runs of ``projects`` (None: all) that pass the filters (``text``: a
        case-insensitive substring of id, project, data set, family or task)."""
        needle = (text or "").strip().lower()
        wanted = None if projects is None else set(projects)
        return [
            r
            for r in self.runs()
            if (wanted is None or r.project in wanted)
            and (not dataset or r.dataset == dataset)
            and (not family or r.family == family)
            and (not status or r.status == status)
            and (not needle or needle in r.text)
        ]

    def query(
        self,
        projects: Collection[str] | None = None,
        dataset: str | None = None,
        family: str | None = None,
        status: str | None = None,
        text: str | None = None,
        sort: str = "started",
        descending: bool = True,
        page: int = 1,
        size: int = 50,
    ) -> tuple[list[RunSummary], int]:
        """One page of the matching runs sorted by ``sort`` (a column of :data:`COLUMNS`
        or a metric; runs without a value come last either way), and how many match."""
        found = self.matching(projects, dataset, family, status, text)
        ordered = sort_runs(found, sort, descending)
        start = (max(page, 1) - 1) * size
        return ordered[start : start + size], len(found)

    def facets(self, projects: Collection[str] | None = None) -> dict[str, list[str]]:
        """The distinct projects, data sets, families and statuses of the runs of
        ``projects`` (what the filter dropdowns offer)."""
        runs = self.matching(projects)
        return {
            column: sorted({str(r.value(column)) for r in runs if r.value(column)})
            for column in ("project", "dataset", "family", "status")
        }

    def get(self, run_id: str) -> RunDetails | None:
        """The run ``run_id`` names in full (config, tables, plots, log tail), or None."""
        summary = self.summary(run_id)
        return None if summary is None else read_details(summary)

    def compare(self, ids: Iterable[str]) -> list[RunDetails]:
        """The known runs among ``ids`` in full, in order, each once."""
        found = []
        for run_id in dict.fromkeys(ids):
            details = self.get(run_id)
            if details is not None:
                found.append(details)
        return found

    def plot(self, run_id: str, name: str) -> Path | None:
        """The file of plot ``name`` of run ``run_id`` when that run lists it, else None."""
        summary = self.summary(run_id)
        if summary is None or name not in plot_names(summary.path):
            return None
        return summary.path / PLOTS / name


# --- reading run folders ---


def metrics_stamp(folder: str) -> tuple[int, int]:
    """(modification time, size) of a run folder's metrics.json; (0, -1) without one."""
    try:
        found = os.stat(os.path.join(folder, METRICS))
    except OSError:
        return 0, -1
    return found.st_mtime_ns, found.st_size


def still_valid(cached: tuple[Stamp, RunSummary], folder_time: int, folder: str) -> bool:
    """Whether a cached summary still holds: the folder is unchanged (a file added, such
    as metrics.json at the end of training, changes it) and, for a run not complete when
    read, so is its metrics.json (it may have been read half-written)."""
    stamp, summary = cached
    if stamp[0] != folder_time:
        return False
    return summary.status == COMPLETE or stamp[1:] == metrics_stamp(folder)


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``, or None when missing or unreadable."""
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def read_summary(run_id: str, path: Path) -> RunSummary:
    """The summary of a run folder: the JSON files first, the YAML config when needed."""
    metrics = read_json(path / METRICS)
    manifest = read_json(path / MANIFEST) or {}
    config = manifest.get("config") if isinstance(manifest.get("config"), dict) else None
    if config is None:
        config = read_yaml(path / CONFIG)
    dataset = config.get("dataset") if isinstance(config.get("dataset"), dict) else {}
    model = config.get("model") if isinstance(config.get("model"), dict) else {}
    search = config.get("search") if isinstance(config.get("search"), dict) else {}
    numbers = {
        str(k): float(v)
        for k, v in (metrics or {}).items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    duration = numbers.pop("train_seconds", None)
    trials = as_number(search.get("n_trials"))
    return RunSummary(
        id=run_id,
        path=path,
        project=text_or_none(manifest.get("project", config.get("project"))),
        dataset=text_or_none(manifest.get("dataset", dataset.get("name"))),
        family=text_or_none(manifest.get("model_family", model.get("name"))),
        task=text_or_none(manifest.get("task", dataset.get("task"))),
        status=COMPLETE if metrics is not None else INCOMPLETE,
        started=started_at(run_id, path),
        duration=duration,
        time_budget=as_number(search.get("time_budget")),
        n_trials=None if trials is None else int(trials),
        metrics=numbers,
    )


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        found = yaml.load(path.read_text(encoding="utf-8"), Loader=YAML_LOADER)
    except (OSError, ValueError, yaml.YAMLError):
        return {}
    return found if isinstance(found, dict) else {}


def text_or_none(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def as_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def started_at(run_id: str, path: Path) -> str:
    """When a run began: the ``<date>/<time>`` of its folder's path (Hydra's local time),
    else its config's modification time."""
    parts = run_id.split("/")
    for day, clock in zip(parts, parts[1:], strict=False):
        found = TIME.match(clock)
        if DATE.match(day) and found:
            return f"{day} {':'.join(found.groups())}"
    try:
        moment = (path / CONFIG).stat().st_mtime
    except OSError:
        return ""
    return datetime.fromtimestamp(moment).strftime("%Y-%m-%d %H:%M:%S")


def read_details(summary: RunSummary, max_rows: int = 100) -> RunDetails:
    """A run's config, tables (first ``max_rows`` rows each), plots and log tail."""
    path = summary.path
    tables, counts = {}, {}
    for name in TABLES:
        found = read_table(path / f"{name}.csv", max_rows)
        if found is not None:
            tables[name], counts[name] = found
    try:
        config = (path / CONFIG).read_text(encoding="utf-8", errors="replace")
    except OSError:
        config = ""
    tail = log_tail(path / LOG)
    tracked = read_json(path / TRACKING)  # the tracker's copy, written by training
    if tracked is not None:
        tracked = {k: str(tracked.get(k) or "") for k in ("run_id", "experiment", "uri")}
    return RunDetails(summary, config, tables, counts, plot_names(path), tail, tracked)


def read_table(path: Path, max_rows: int) -> tuple[list[dict[str, Any]], int] | None:
    """The first ``max_rows`` records of a CSV (numbers as numbers) and its row count."""
    try:
        with path.open(newline="", encoding="utf-8", errors="replace") as handle:
            rows = []
            count = 0
            for record in csv.DictReader(handle):
                if count < max_rows:
                    rows.append({str(k): as_value(v) for k, v in record.items()})
                count += 1
    except (OSError, csv.Error):
        return None
    return rows, count


def as_value(text: str | None) -> Any:
    """A CSV cell: an int or float when it reads as one, else the text."""
    if text is None or text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def plot_names(path: Path) -> list[str]:
    """The PNG files directly under a run's plots folder (no links, no subfolders)."""
    try:
        entries = list(os.scandir(path / PLOTS))
    except OSError:
        return []
    return sorted(
        e.name for e in entries if e.name.endswith(".png") and e.is_file(follow_symlinks=False)
    )


def log_tail(path: Path, size: int = LOG_TAIL_BYTES) -> str:
    """The last ``size`` bytes of a log, from its first whole line."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            end = handle.tell()
            handle.seek(max(end - size, 0))
            data = handle.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    return text.split("\n", 1)[-1] if end > size else text


# --- sorting and comparing ---


def sort_runs(runs: list[RunSummary], column: str, descending: bool) -> list[RunSummary]:
    """``runs`` by ``column`` (a field or metric), runs without a value last; ties by id."""
    known = [r for r in runs if r.value(column) is not None]
    missing = [r for r in runs if r.value(column) is None]
    known.sort(key=lambda r: r.id)
    known.sort(key=lambda r: r.value(column), reverse=descending)
    return known + sorted(missing, key=lambda r: r.id)


def metric_names(runs: Iterable[RunSummary]) -> list[str]:
    """The metrics of ``runs``: cross-validation scores first, then the rest as found."""
    names: dict[str, None] = {}
    for run in runs:
        names.update(dict.fromkeys(run.metrics))
    return sorted(names, key=lambda n: not n.startswith("cv_"))


def lower_is_better(metric: str) -> bool:
    """Whether a smaller value of ``metric`` is better (losses, errors, seconds)."""
    return bool(LOWER_IS_BETTER.search(metric.lower()))


def best_value(metric: str, values: Iterable[float | None]) -> float | None:
    """The best of ``values`` for ``metric`` (None when none is known)."""
    known = [v for v in values if v is not None]
    if not known:
        return None
    return min(known) if lower_is_better(metric) else max(known)


MISSING = object()  # a key one config lacks, in config_diff


def config_diff(configs: list[Any], prefix: str = "") -> list[tuple[str, list[Any]]]:
    """The dotted keys whose values differ between nested ``configs``, each with its value
    per config (:data:`MISSING` where a config lacks it), sorted by key. Mappings every
    config has are compared key by key; a subtree some config lacks is one entry."""
    keys = sorted({str(k) for c in configs if isinstance(c, dict) for k in c})
    diff: list[tuple[str, list[Any]]] = []
    for key in keys:
        values = [c.get(key, MISSING) if isinstance(c, dict) else MISSING for c in configs]
        dotted = f"{prefix}.{key}" if prefix else key
        if all(isinstance(v, dict) for v in values):
            diff += config_diff(values, dotted)
        elif any(v is not values[0] and v != values[0] for v in values[1:]):
            diff.append((dotted, values))
    return diff
