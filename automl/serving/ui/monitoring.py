"""Dashboard section: monitoring. Per model, drift and performance over time (the
monitoring history: online checks and batch reports), the columns that drift most, the
alerts sent, the batch reports themselves, and an online check on demand (the API's own
:func:`~automl.serving.routes.monitoring.check`)."""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from automl.errors import AutomlError
from automl.monitoring.history import latest
from automl.services.registry import reference
from automl.serving.deps import LimitedRoute, Server, ServerDep
from automl.serving.inputs import ApiError
from automl.serving.models import ServedModel
from automl.serving.routes.monitoring import check
from automl.serving.ui.web import (
    Board,
    Dashboard,
    SignedIn,
    Visitor,
    form,
    number,
    page,
    pages_of,
    standalone,
    timestamp,
)

router = APIRouter(route_class=LimitedRoute)
STATUS_COLOURS = {"ok": "#1a7f37", "warning": "#bf8700", "drift": "#cf222e"}
CHARTED_CHECKS = 200  # the newest checks in the model's charts
FREQUENT_COLUMNS = 20  # rows of the "drifts most often" table
REPORTS_LISTED = 20  # batch reports linked from a model's page
CHARTED_COLUMNS = 24  # drifted columns drawn on a check's page (all are in its table)
TOP_CATEGORIES = 20  # categories per categorical chart (as the batch report)
TABLE_BINS = 10  # rows of a numeric column's data table (bins merged)


# --------------------------------------------------------------------------- the index


@router.get("/ui/monitoring")
async def monitoring_index(
    request: Request, who: SignedIn, state: ServerDep, board: Board
) -> HTMLResponse:
    """One row per visible model: its newest check."""
    models = await run_in_threadpool(model_rows, who, state, board)
    return page(request, "monitoring.html", who, models=models)


def model_rows(who: Visitor, state: Server, board: Dashboard) -> list[dict[str, Any]]:
    """The visible models (registered, or with checks) and the newest check of each."""
    registered = [n for n in state.models.table()["name"] if who.sees(n)]
    newest = {m: line for m, line in latest(board.history.lines()).items() if shown(who, m)}
    return [{"name": name, "check": newest.get(name)} for name in sorted({*registered, *newest})]


def shown(who: Visitor, model: str) -> bool:
    """A history line's model this visitor may see, named as a model (not a bundle path)."""
    return "/" not in model and "\\" not in model and who.sees(model)


# --------------------------------------------------------------------------- one model


@router.get("/ui/monitoring/{name}")
async def model_monitoring(
    request: Request,
    name: str,
    who: SignedIn,
    state: ServerDep,
    board: Board,
    page_number: int = Query(1, ge=1, alias="page"),
) -> HTMLResponse:
    """A model's checks over time, drifting columns, alerts, reports and the check form."""
    who.require_model(name)
    view = await run_in_threadpool(model_view, name, state, board, page_number)
    return page(request, "monitoring_model.html", who, name=name, **view)


def model_view(name: str, state: Server, board: Dashboard, page_number: int) -> dict[str, Any]:
    """Everything the model's page shows (404 for a model neither registered nor checked)."""
    lines = board.history.lines([name])
    versions = state.models.versions(name)
    if not lines and not versions:
        raise ApiError(404, f"no model '{name}' in the registry")
    size = max(1, int(board.cfg.page_size))
    pages = pages_of(len(lines), size)
    page_number = min(page_number, pages)
    newest_first = lines[::-1]
    shown_lines = newest_first[(page_number - 1) * size : page_number * size]
    return {
        "checks": [check_row(name, line) for line in shown_lines],
        "total": len(lines),
        "page": page_number,
        "pages": pages,
        "page_url": lambda n: f"?page={n}",
        "latest": lines[-1] if lines else None,
        "share_chart": share_chart(lines[-CHARTED_CHECKS:]),
        "performance_chart": performance_chart(lines[-CHARTED_CHECKS:]),
        "frequent": frequent_columns(lines),
        "alerts": alerts_of(name, lines, state.cfg.monitoring.alerts.state),
        "reports": [check_row(name, line) for line in newest_first if line.get("report")][
            :REPORTS_LISTED
        ],
        "refs": check_choices(versions),
        "log_on": state.logger is not None,
    }


def check_row(name: str, line: dict[str, Any]) -> dict[str, Any]:
    """A history line for the checks table (with its report's page, if any)."""
    folder = line.get("report")
    return line | {
        "drifted": list(line.get("drifted_columns") or []),
        "performance": dict(line.get("performance") or {}),
        "report_url": None if not folder else f"/ui/monitoring/{name}/reports/{report_id(folder)}",
    }


def report_id(folder: Any) -> str:
    """The id of a batch report in URLs: a digest of its folder (never the path itself)."""
    return hashlib.sha256(str(folder).encode()).hexdigest()[:16]


def share_chart(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """The share of drifted columns per check, each point coloured by the check's status."""
    colours = [STATUS_COLOURS.get(line.get("status"), "#57606a") for line in lines]
    return {
        "type": "line",
        "labels": [check_label(line) for line in lines],
        "datasets": [
            {
                "label": "share of columns drifted",
                "data": [line.get("share_drifted") for line in lines],
                "pointBackgroundColor": colours,
                "pointBorderColor": colours,
                "pointRadius": 4,
            }
        ],
        "scales": {"y": {"min": 0, "max": 1, "title": {"display": True, "text": "share"}}},
    }


def check_label(line: dict[str, Any]) -> str:
    """A check on a chart's axis: when, how, with what result."""
    return f"{timestamp(line.get('time'))} ({line.get('source')}, {line.get('status')})"


def performance_chart(lines: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Each metric's value on the checked rows per check, and its test set value."""
    metrics = sorted({m for line in lines for m in line.get("performance") or {}})
    if not metrics:
        return None
    datasets = []
    for metric in metrics:
        values = [(line.get("performance") or {}).get(metric) or {} for line in lines]
        datasets.append(
            {"label": f"{metric} (checked rows)", "data": [v.get("current") for v in values]}
        )
        datasets.append(
            {
                "label": f"{metric} (test set)",
                "data": [v.get("reference") for v in values],
                "borderDash": [6, 4],
            }
        )
    return {"type": "line", "labels": [check_label(line) for line in lines], "datasets": datasets}


def frequent_columns(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The columns that drifted most often: checks they drifted in, and the share."""
    counts = Counter(c for line in lines for c in set(line.get("drifted_columns") or []))
    return [
        {"column": column, "checks": n, "share": n / len(lines)}
        for column, n in counts.most_common(FREQUENT_COLUMNS)
    ]


def alerts_of(name: str, lines: list[dict[str, Any]], state_file: Any) -> dict[str, Any]:
    """The alerts sent for ``name``, newest first: the checks whose history line records
    one (``alert``), and the alerter's state: per reference of the model that was checked
    (``name``, ``name/2``, ``name@production``), its last alert and the signals in it."""
    sent = [line for line in lines if line.get("alert")][::-1]
    known: Any = {}
    path = None if state_file is None else Path(str(state_file)).expanduser()
    if path is not None and path.is_file():
        try:
            known = json.loads(path.read_text())
        except (OSError, ValueError):
            known = {}
    last: dict[tuple[str, float], list[str]] = {}
    for ref, signals in known.items() if isinstance(known, dict) else ():
        if (ref == name or ref.startswith((f"{name}/", f"{name}@"))) and isinstance(signals, dict):
            for signal, when in signals.items():
                if isinstance(when, int | float):
                    last.setdefault((ref, float(when)), []).append(signal)
    latest_alerts = [
        {"ref": ref, "time": when, "signals": sorted(signals)}
        for (ref, when), signals in sorted(last.items(), key=lambda item: -item[0][1])
    ]
    return {"sent": sent, "last": latest_alerts}


def check_choices(versions: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(value, label) of what the check form can check: latest, each version, each alias."""
    choices = [("", "the latest version")]
    for v in sorted(versions, key=lambda v: -int(v["version"])):
        choices.append((str(v["version"]), f"version {v['version']}"))
    for alias in sorted({a for v in versions for a in v["aliases"]}):
        choices.append((f"@{alias}", f"alias {alias}"))
    return choices


# --------------------------------------------------------------------------- a check now


@router.post("/ui/monitoring/{name}/check")
async def run_check(request: Request, name: str, who: SignedIn, state: ServerDep) -> HTMLResponse:
    """The online check of the API (``GET /v1/models/{name}/monitoring``), run now: the
    verdict on the model's prediction log window, its alert, a new history line."""
    fields = await form(request, who)
    who.require_model(name)
    served = await served_model(state, name, fields.get("ref", ""))
    try:
        verdict = await check(served, state)
    except AutomlError as exc:
        raise ApiError(409, str(exc)) from None
    view = await run_in_threadpool(verdict_view, verdict)
    return page(request, "monitoring_check.html", who, name=name, verdict=verdict, **view)


async def served_model(state: Server, name: str, choice: str) -> ServedModel:
    """The version the form chose (``""`` latest, ``"3"``, ``"@alias"``), loaded as the
    API's ``served_model`` dependency loads it."""
    version, alias = None, None
    if choice.startswith("@"):
        alias = choice[1:]
        if not alias or not all(c.isalnum() or c in "_.-" for c in alias):
            raise ApiError(422, "ref: an alias is letters, digits, '_', '.' and '-'")
    elif choice:
        if not choice.isdigit() or int(choice) < 1:
            raise ApiError(422, "ref: a version is a number from 1")
        version = int(choice)
    resolved = await state.find(reference(name, version, alias), name)
    if state.cache.has(*resolved):
        return state.cache.get(*resolved)
    return await run_in_threadpool(state.cache.get, *resolved)


def verdict_view(verdict: dict[str, Any]) -> dict[str, Any]:
    """The check's columns as table rows, and charts of the drifted ones."""
    drift = verdict.get("drift") or {}
    columns = dict(drift.get("columns") or {})
    prediction = drift.get("prediction")
    if prediction:
        columns[f"prediction ({prediction.get('column')})"] = prediction
    rows = [column_row(name, col) for name, col in columns.items()]
    drifted = [(n, c) for n, c in columns.items() if c.get("drifted") and c.get("histogram")]
    return {
        "columns": rows,
        "charts": [column_chart(n, c["histogram"]) for n, c in drifted[:CHARTED_COLUMNS]],
        "more_drifted": max(0, len(drifted) - CHARTED_COLUMNS),
    }


def column_row(name: str, col: dict[str, Any]) -> dict[str, Any]:
    """One column's test, statistic, missing share and verdict."""
    test = col.get("test") or {}
    missing = col.get("missing") or {}
    new = col.get("new_categories")
    return {
        "name": name,
        "kind": col.get("kind"),
        "method": test.get("method") or test.get("note") or "",
        "statistic": test.get("statistic"),
        "threshold": test.get("threshold"),
        "p_value": test.get("p_value"),
        "missing": (missing.get("reference"), missing.get("current")),
        "new": None if not new else (new.get("rate"), list(new.get("examples") or [])),
        "drifted": bool(col.get("drifted")),
        "reasons": list(col.get("reasons") or []),
    }


def column_chart(name: str, hist: dict[str, Any]) -> dict[str, Any]:
    """Reference against current for one column, drawn as the batch report draws it:
    cumulative shares over the bins (numeric), shares of the top categories (categorical);
    with the same data as table rows (bins merged to a few)."""
    if "edges" in hist:
        return numeric_chart(name, hist)
    return categorical_chart(name, hist)


def numeric_chart(name: str, hist: dict[str, Any]) -> dict[str, Any]:
    ref, cur = list(hist["reference"]), list(hist["current"])
    xs = [float(f"{x:.6g}") for x in (hist["low"], *hist["edges"], hist["high"])]

    def cdf(values: list[float]) -> list[dict[str, float]]:
        total, points = 0.0, [{"x": xs[0], "y": 0.0}]
        for x, share in zip(xs[1:], values):
            total += share
            points.append({"x": x, "y": round(total, 6)})
        return points

    spec = {
        "type": "line",
        "datasets": [
            {"label": "reference", "data": cdf(ref), "stepped": True, "pointRadius": 0},
            {"label": "current", "data": cdf(cur), "stepped": True, "pointRadius": 0},
        ],
        "scales": {
            "x": {"type": "linear", "title": {"display": True, "text": name}},
            "y": {"min": 0, "max": 1, "title": {"display": True, "text": "cumulative share"}},
        },
    }
    step = max(1, math.ceil(len(ref) / TABLE_BINS))
    rows = [
        (
            f"{number(xs[i])} to {number(xs[min(i + step, len(ref))])}",
            sum(ref[i : i + step]),
            sum(cur[i : i + step]),
        )
        for i in range(0, len(ref), step)
    ]
    return {"name": name, "kind": "numeric", "spec": spec, "rows": rows}


def categorical_chart(name: str, hist: dict[str, Any]) -> dict[str, Any]:
    ref, cur, labels = list(hist["reference"]), list(hist["current"]), list(hist["labels"])
    order = sorted(range(len(labels)), key=lambda i: -max(ref[i], cur[i]))[:TOP_CATEGORIES]
    spec = {
        "type": "bar",
        "labels": [str(labels[i]) for i in order],
        "datasets": [
            {"label": "reference", "data": [ref[i] for i in order]},
            {"label": "current", "data": [cur[i] for i in order]},
        ],
        "scales": {"y": {"title": {"display": True, "text": "share of values"}}},
    }
    rows = [(str(labels[i]), ref[i], cur[i]) for i in order]
    return {"name": name, "kind": "categorical", "spec": spec, "rows": rows}


# --------------------------------------------------------------------------- batch reports


@router.get("/ui/monitoring/{name}/reports/{report}")
async def batch_report(request: Request, name: str, report: str, who: SignedIn, board: Board):
    """A batch report's ``report.html``, found among this model's history lines (a
    standalone page: served sandboxed, without scripts)."""
    who.require_model(name)
    html = await run_in_threadpool(report_html, name, report, board)
    return standalone(html)


def report_html(name: str, report: str, board: Dashboard) -> str:
    """The text of the report whose id is ``report`` among ``name``'s checks (else 404)."""
    for line in board.history.lines([name]):
        folder = line.get("report")
        if folder and report_id(folder) == report:
            path = Path(str(folder)) / "report.html"
            if path.is_file():
                return path.read_text(encoding="utf-8", errors="replace")
            break
    raise ApiError(404, f"no batch report '{report}' of model '{name}'")
