"""Training runs: the runs table (filter, sort, page), runs side by side, and one run's
facts, metrics, tables, plots and config, from the runs index over the run folders and
the registry (which version came from which run).

Every run id and plot name is looked up in the index; a run of a project the visitor may
not view is answered exactly like a missing one (404 "no such run").
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse
from starlette.concurrency import run_in_threadpool

from automl.services.runs import (
    COLUMNS,
    MISSING,
    RunDetails,
    RunIndex,
    RunSummary,
    best_value,
    config_diff,
    lower_is_better,
    metric_names,
)
from automl.serving.deps import LimitedRoute, Server, ServerDep
from automl.serving.inputs import ApiError
from automl.serving.ui.web import SECURITY_HEADERS, Board, SignedIn, Visitor, page, pages_of

router = APIRouter(route_class=LimitedRoute)

NO_SUCH_RUN = "no such run"
FILTERS = ("project", "dataset", "family", "status", "text")
HEADERS = {  # column: (label, numeric)
    "id": ("Run", False),
    "started": ("Started", False),
    "project": ("Project", False),
    "dataset": ("Data set", False),
    "family": ("Family", False),
    "status": ("Status", False),
    "duration": ("Duration (s)", True),
    "time_budget": ("Budget (s)", True),
    "n_trials": ("Trials", True),
}
MAX_METRIC_COLUMNS = 8
MAX_COMPARED = 10
LEADERBOARD_TOP = 5  # rows of each leaderboard on the compare page
LEADERBOARD_COLUMNS = ("number", "family", "value", "seconds", "state")


# --- who sees which run ---


def scope(who: Visitor) -> list[str] | None:
    """The projects whose runs ``who`` sees (None: every project, for a site admin)."""
    return None if who.site_admin else who.projects


def visible_run(who: Visitor, index: RunIndex, run_id: str) -> RunSummary:
    """The run ``run_id`` names when ``who`` may view it; else 404, the same answer for
    a run of another project and for none at all."""
    found = index.summary(run_id)
    if found is None or not (who.site_admin or (found.project and who.can(found.project))):
        raise ApiError(404, NO_SUCH_RUN)
    return found


def registrations(
    who: Visitor, state: Server, index: RunIndex, runs: list[RunSummary]
) -> dict[str, list[tuple[str, int]]]:
    """Per run id, the registered model versions (of models ``who`` sees) made by it."""
    wanted = {r.id for r in runs}
    found: dict[str, list[tuple[str, int]]] = {}
    for dataset in sorted({r.dataset for r in runs if r.dataset}):
        table = state.models.compare(dataset=dataset, limit=None)
        for row in table.to_dict("records"):
            run_id = index.id_of(row.get("run_dir"))
            if run_id in wanted and who.sees(row["name"]):
                found.setdefault(run_id, []).append((row["name"], int(row["version"])))
    return found


# --- the runs table ---


def page_number(text: str | None) -> int:
    try:
        return max(int(text or 1), 1)
    except ValueError:
        return 1


def projects_asked(who: Visitor, filters: dict[str, str]) -> list[str] | None:
    """The projects to list: the one filtered on, when ``who`` sees it (else none), or
    all of ``who``'s."""
    visible = scope(who)
    if "project" not in filters:
        return visible
    chosen = filters["project"]
    return [chosen] if visible is None or chosen in visible else []


def sort_order(params: dict[str, str], metrics: list[str]) -> tuple[str, bool]:
    """(column or metric, descending) of the query; newest first by default."""
    sort = params.get("sort", "started")
    if sort not in COLUMNS and sort not in metrics:
        sort = "started"
    return sort, params.get("descending", "true").lower() in ("1", "true", "yes")


def header_columns(
    shown: list[str], sort: str, descending: bool, link: Callable[..., str]
) -> list[dict[str, Any]]:
    """The table's sortable columns: label, alignment, aria-sort and the link that sorts
    by it (the other way round when it is the sorted column; numbers largest first)."""
    columns = []
    for key, (label, numeric) in [*HEADERS.items(), *((m, (m, True)) for m in shown)]:
        first_way = numeric or key == "started"
        way = not descending if key == sort else first_way
        columns.append(
            {
                "key": key,
                "label": label,
                "numeric": numeric,
                "sorted": None if key != sort else ("descending" if descending else "ascending"),
                "href": link(sort=key, descending=str(way).lower()),
            }
        )
    return columns


def runs_listing(
    who: Visitor, state: Server, index: RunIndex, params: dict[str, str], size: int
) -> dict[str, Any]:
    """What the runs page shows for the query ``params``."""
    filters = {k: params[k].strip() for k in FILTERS if params.get(k, "").strip()}
    projects = projects_asked(who, filters)
    options = index.facets(scope(who))
    narrowed = index.facets(projects) if "project" in filters else options
    selection = {k: filters.get(k) for k in ("dataset", "family", "status", "text")}
    metrics = metric_names(index.matching(projects, **selection))
    sort, descending = sort_order(params, metrics)
    shown = metrics[:MAX_METRIC_COLUMNS]
    if sort in metrics and sort not in shown:
        shown.append(sort)
    order = {"sort": sort, "descending": descending, "size": size}
    page_no = page_number(params.get("page"))
    rows, total = index.query(projects, **selection, **order, page=page_no)
    pages = pages_of(total, size)
    if page_no > pages:
        page_no = pages
        rows, _ = index.query(projects, **selection, **order, page=page_no)

    def link(**changes: Any) -> str:
        query = {**filters, "sort": sort, "descending": str(descending).lower(), **changes}
        return "/ui/runs?" + urlencode({k: v for k, v in query.items() if v not in (None, "")})

    return {
        "rows": rows,
        "total": total,
        "page_no": page_no,
        "pages": pages,
        "columns": header_columns(shown, sort, descending, link),
        "metrics": shown,
        "filters": filters,
        "projects": options["project"] if scope(who) is None else who.projects,
        "datasets": narrowed["dataset"],
        "families": narrowed["family"],
        "statuses": sorted({"complete", "incomplete", *narrowed["status"]}),
        "registered": registrations(who, state, index, rows),
        "page_url": lambda n: link(page=n),
    }


@router.get("/ui/runs")
async def runs_page(
    request: Request, who: SignedIn, state: ServerDep, board: Board
) -> HTMLResponse:
    """The runs of the visitor's projects: filters, sortable columns, pages, and a form
    to compare the runs ticked."""
    params = dict(request.query_params)
    context = await run_in_threadpool(
        runs_listing, who, state, board.runs, params, max(int(board.cfg.page_size), 1)
    )
    return page(request, "runs.html", who, **context)


# --- runs side by side ---


def shown_value(value: Any) -> str | None:
    """A config value for the diff table (None: the run's config lacks the key)."""
    if value is MISSING:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def comparison(who: Visitor, state: Server, index: RunIndex, ids: list[str]) -> dict[str, Any]:
    """What the compare page shows for the runs ``ids`` (each checked first)."""
    ids = list(dict.fromkeys(i for i in ids if i))
    if len(ids) < 2:
        raise ApiError(400, "choose two or more runs to compare")
    if len(ids) > MAX_COMPARED:
        raise ApiError(400, f"compare at most {MAX_COMPARED} runs at a time")
    for run_id in ids:
        visible_run(who, index, run_id)
    runs = index.compare(ids)
    if len(runs) != len(ids):  # one went away since the check
        raise ApiError(404, NO_SUCH_RUN)
    summaries = [r.summary for r in runs]
    metrics = []
    for name in metric_names(summaries):
        values = [s.metrics.get(name) for s in summaries]
        best = best_value(name, values) if sum(v is not None for v in values) > 1 else None
        metrics.append(
            {"name": name, "cells": values, "best": best, "lower": lower_is_better(name)}
        )
    diff = config_diff([r.config_tree() for r in runs])
    return {
        "runs": runs,
        "metrics": metrics,
        "diff": [(key, [shown_value(v) for v in values]) for key, values in diff],
        "leaderboards": [leaderboard_top(r) for r in runs],
        "registered": registrations(who, state, index, summaries),
    }


def leaderboard_top(run: RunDetails) -> dict[str, Any]:
    """The first rows of a run's leaderboard, in the columns every family shares."""
    rows = run.tables.get("leaderboard", [])[:LEADERBOARD_TOP]
    columns = [c for c in LEADERBOARD_COLUMNS if rows and c in rows[0]]
    return {"run": run, "columns": columns, "rows": rows}


@router.get("/ui/runs/compare")
async def compare_page(
    request: Request, who: SignedIn, state: ServerDep, board: Board
) -> HTMLResponse:
    """Two or more runs side by side: facts, metrics (the best marked), the config keys
    that differ and the top of their leaderboards."""
    ids = request.query_params.getlist("run")
    context = await run_in_threadpool(comparison, who, state, board.runs, ids)
    return page(request, "runs_compare.html", who, **context)


# --- one run ---


def plot_label(name: str) -> str:
    """``feature_importance.png`` as "Feature importance", ``roc.png`` as "ROC"."""
    words = [w.upper() if len(w) <= 3 else w for w in Path(name).stem.split("_")]
    text = " ".join(words)
    return text[:1].upper() + text[1:]


def run_view(who: Visitor, state: Server, index: RunIndex, run_id: str) -> dict[str, Any]:
    """What the run page shows."""
    visible_run(who, index, run_id)
    run = index.get(run_id)
    if run is None:
        raise ApiError(404, NO_SUCH_RUN)
    tables = [
        {"key": key, "title": title, "rows": run.tables[key], "count": run.table_rows[key]}
        for key, title in (
            ("leaderboard", "Leaderboard (search trials)"),
            ("families", "Families"),
            ("ensemble", "Ensemble"),
        )
        if key in run.tables
    ]
    return {
        "run": run,
        "summary": run.summary,
        "tables": tables,
        "plots": [(name, plot_label(name)) for name in run.plots],
        "registered": registrations(who, state, index, [run.summary]).get(run_id, []),
        "lower_is_better": lower_is_better,
    }


@router.get("/ui/runs/{run_id:path}/plots/{name}")
async def run_plot(run_id: str, name: str, who: SignedIn, board: Board) -> FileResponse:
    """A PNG plot the index lists for a run the visitor may view."""
    found = await run_in_threadpool(plot_file, who, board.runs, run_id, name)
    return FileResponse(found, media_type="image/png", headers=SECURITY_HEADERS)


def plot_file(who: Visitor, index: RunIndex, run_id: str, name: str) -> Path:
    """The file of a plot the index lists for a run ``who`` may view (else 404)."""
    visible_run(who, index, run_id)
    found = index.plot(run_id, name)
    if found is None:
        raise ApiError(404, "no such plot")
    return found


@router.get("/ui/runs/{run_id:path}")
async def run_page(
    request: Request, run_id: str, who: SignedIn, state: ServerDep, board: Board
) -> HTMLResponse:
    """One run: facts, registered versions, metrics, tables, plots, config and log tail."""
    context = await run_in_threadpool(run_view, who, state, board.runs, run_id)
    return page(request, "run.html", who, **context)
