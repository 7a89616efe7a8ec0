"""Dashboard section: data sets, known through the models of the visitor's projects.

A model ``<project>.<dataset>`` names a data set; its latest registered version's
``manifest.json`` (read through the registry's recorded bundle path and checked against
the recorded hash, never unpickled) tells its contract, features, target, task, rows,
fingerprint and the data set YAML as composed for training. A data set that
``python -m automl.ingest`` wrote to one of ``ui.conf_dirs`` also has its own YAML and
a profile report: both are found by listing those folders, never by joining request
input into a path.
"""

from __future__ import annotations

import base64
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import yaml
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from automl.config import check_name
from automl.errors import AutomlError
from automl.redact import redact
from automl.services.registry import project_of
from automl.serving.deps import LimitedRoute, Server, ServerDep
from automl.serving.inputs import ApiError
from automl.serving.ui.web import (
    Board,
    SignedIn,
    Visitor,
    contract_rows,
    page,
    pages_of,
    standalone,
)

log = logging.getLogger(__name__)
router = APIRouter(route_class=LimitedRoute)

PROFILE = "profile.html"  # the report automl.ingest writes in <conf_dir>/reports/<name>/
PLOTS = "plots"  # its figures, beside it (inlined as data URIs: the CSP allows no others)
PLOT_FILE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\.png")
KEPT = ("project", "dataset", "task", "target", "classes", "features", "contract")
KEPT += ("train_rows", "data_fingerprint", "created_at", "model_family")


# --------------------------------------------------------------------------- finding


def manifest(state: Server, name: str, version: int) -> dict[str, Any]:
    """What the data pages show of version ``version`` of ``name``: the manifest's data
    fields and the data set node of its config (secrets masked)."""
    found = state.models.manifest(name, version)
    kept = {k: found.get(k) for k in KEPT}
    kept["dataset_config"] = redact((found.get("config") or {}).get("dataset") or {})
    return kept


def summary(state: Server, name: str, version: int) -> dict[str, Any] | None:
    """The manifest summary of a version, or None (logged) when it cannot be read."""
    try:
        return manifest(state, name, int(version))
    except (AutomlError, OSError, TypeError, ValueError) as exc:
        log.warning("data pages: no manifest for %s/%s: %s", name, version, exc)
        return None


@dataclass
class Ingested:
    """What ``automl.ingest`` wrote in the conf folders: YAML files and report folders by
    data set name (the first folder of ``ui.conf_dirs`` that has a name wins)."""

    yamls: dict[str, Path] = field(default_factory=dict)
    reports: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def scan(cls, conf_dirs: list[Any]) -> Ingested:
        found = cls()
        for folder in (Path(str(d)).expanduser() for d in conf_dirs):
            for path in listing(folder / "dataset"):
                if path.suffix == ".yaml" and path.is_file():
                    found.yamls.setdefault(path.stem, path)
            for path in listing(folder / "reports"):
                found.reports.setdefault(path.name, path)
        return found

    def profile(self, name: str) -> Path | None:
        """The profile report (HTML) of data set ``name``, if one was written."""
        folder = self.reports.get(name)
        report = None if folder is None else folder / PROFILE
        return report if report is not None and report.is_file() else None


def listing(folder: Path) -> list[Path]:
    """The entries of ``folder`` (none when it is missing or unreadable)."""
    try:
        return sorted(folder.iterdir())
    except OSError:
        return []


def data_set_of(who: Visitor, project: str, dataset: str) -> str:
    """The model name ``<project>.<dataset>`` once ``who`` may view ``project`` (403 first,
    whatever the data set) and both parts are names (404 otherwise)."""
    who.require(project, "viewer", f"project '{project}'")
    try:
        check_name(dataset)
    except AutomlError:
        raise ApiError(404, f"no data set '{dataset}' in project '{project}'") from None
    name = f"{project}.{dataset}"
    if project_of(name) != project:
        raise ApiError(404, f"no data set '{dataset}' in project '{project}'")
    return name


def latest_of(table: pd.DataFrame, name: str) -> int:
    """The latest version of the model ``name`` in the registry's ``table`` (404 when none
    is registered)."""
    row = table[table["name"] == name]
    if row.empty:
        project, dataset = name.split(".", 1)
        raise ApiError(404, f"no data set '{dataset}' in project '{project}'")
    return int(row["latest"].iloc[0])


# --------------------------------------------------------------------------- pages


@router.get("/ui/data")
async def data_sets(
    request: Request,
    who: SignedIn,
    state: ServerDep,
    board: Board,
    page_number: Annotated[int, Query(alias="page", ge=1)] = 1,
) -> HTMLResponse:
    """The data sets of the visitor's projects, one row per project and data set."""
    rows, pages = await run_in_threadpool(
        data_rows, who, state, list(board.cfg.conf_dirs), page_number, board.cfg.page_size
    )
    return page(
        request,
        "data.html",
        who,
        rows=rows,
        page=page_number,
        pages=pages,
        data_page=lambda number: f"/ui/data?page={number}",
    )


def data_rows(
    who: Visitor, state: Server, conf_dirs: list[Any], number: int, size: int
) -> tuple[list[dict[str, Any]], int]:
    """One page of rows: data set, project, task, target, rows, columns, ingested."""
    table = state.models.table()
    named = [
        (name.split(".", 1)[1], project_of(name), name, int(latest))
        for name, latest in zip(table["name"], table["latest"], strict=True)
        if who.sees(name) and "." in name
    ]
    named.sort()
    pages = pages_of(len(named), size)
    ingested = Ingested.scan(conf_dirs)
    rows = []
    for dataset, project, name, latest in named[(number - 1) * size : number * size]:
        found = summary(state, name, latest) or {}
        rows.append(
            {
                "dataset": dataset,
                "project": project,
                "model": name,
                "version": latest,
                "task": found.get("task"),
                "target": found.get("target"),
                "rows": found.get("train_rows"),
                "columns": len((found.get("contract") or {}).get("columns") or {}),
                "features": len(found.get("features") or []),
                "ingested": dataset in ingested.yamls,
                "profile": ingested.profile(dataset) is not None,
                "readable": bool(found),
            }
        )
    return rows, pages


@router.get("/ui/data/{project}/{dataset}")
async def data_set(
    request: Request, who: SignedIn, state: ServerDep, board: Board, project: str, dataset: str
) -> HTMLResponse:
    """One data set: its facts, contract, YAML, features and the models trained on it."""
    name = data_set_of(who, project, dataset)
    facts = await run_in_threadpool(data_set_facts, who, state, list(board.cfg.conf_dirs), name)
    return page(request, "data_set.html", who, **facts)


def data_set_facts(who: Visitor, state: Server, conf_dirs: list[Any], name: str) -> dict[str, Any]:
    """What the data set page shows (see :func:`data_set`)."""
    project, dataset = name.split(".", 1)
    table = state.models.table()
    latest = latest_of(table, name)
    found = summary(state, name, latest)
    if found is None:
        raise ApiError(409, f"the manifest of model '{name}' version {latest} cannot be read")
    ingested = Ingested.scan(conf_dirs)
    spec_file = ingested.yamls.get(dataset)
    spec, problem = found["dataset_config"], ""
    if spec_file is not None:
        try:
            spec = redact(yaml.safe_load(spec_file.read_text(encoding="utf-8")) or {})
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            problem = f"the ingested YAML could not be read ({type(exc).__name__}); "
            problem += "shown: the data set as composed for training"
            spec_file = None
    return {
        "project": project,
        "dataset": dataset,
        "model": name,
        "latest": latest,
        "facts": found,
        "contract": contract_rows(found),
        "spec_yaml": yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=100),
        "spec_ingested": spec_file is not None,
        "problem": problem,
        "profile": ingested.profile(dataset) is not None,
        "trained": trained_on(who, state, table, dataset),
    }


def trained_on(
    who: Visitor, state: Server, table: pd.DataFrame, dataset: str
) -> list[dict[str, Any]]:
    """The versions of the visitor's models of data set ``dataset`` (every project they
    see), newest first."""
    out = []
    for name in table["name"]:
        if "." in name and name.split(".", 1)[1] == dataset and who.sees(name):
            for version in reversed(state.models.versions(name)):
                out.append({"model": name, "project": project_of(name), **version})
    return out


@router.get("/ui/data/{project}/{dataset}/profile")
async def profile_report(
    who: SignedIn, state: ServerDep, board: Board, project: str, dataset: str
) -> HTMLResponse:
    """The ingest profile report of a data set, sandboxed (404 when none was written)."""
    name = data_set_of(who, project, dataset)
    html = await run_in_threadpool(report_html, state, list(board.cfg.conf_dirs), name)
    return standalone(html)


def report_html(state: Server, conf_dirs: list[Any], name: str) -> str:
    """The report's HTML with its plots inlined (404 without a model or a report)."""
    dataset = name.split(".", 1)[1]
    latest_of(state.models.table(), name)
    report = Ingested.scan(conf_dirs).profile(dataset)
    if report is None:
        raise ApiError(404, f"no profile report for data set '{dataset}' (see automl.ingest)")
    html = report.read_text(encoding="utf-8", errors="replace")
    for plot in listing(report.parent / PLOTS):
        if PLOT_FILE.fullmatch(plot.name) and f'src="{PLOTS}/{plot.name}"' in html:
            data = base64.b64encode(plot.read_bytes()).decode("ascii")
            html = html.replace(f'src="{PLOTS}/{plot.name}"', f'src="data:image/png;base64,{data}"')
    return html
