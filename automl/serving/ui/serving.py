"""Dashboard section: serving. Requests, errors and latency per model and version (the
server's own metrics, since it started), and a model's recent predictions with their
feedback labels (the prediction log)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from automl.serving.deps import LimitedRoute, Server, ServerDep
from automl.serving.inputs import ApiError
from automl.serving.metrics import quantile
from automl.serving.prediction_log import read_log
from automl.serving.ui.web import SignedIn, number, page

router = APIRouter(route_class=LimitedRoute)
RECENT = 50  # predictions shown on a model's page
LOG_HEAD = ("request_id", "ts", "model", "version")
SYNC_SECONDS = 2.0  # the longest a page waits for queued predictions to be written


@router.get("/ui/serving")
async def serving_index(request: Request, who: SignedIn, state: ServerDep) -> HTMLResponse:
    """Traffic per visible model and version since the server started."""
    rows = await run_in_threadpool(traffic_rows, state, who.sees)
    return page(request, "serving.html", who, rows=rows, traffic=traffic_chart(rows))


@router.get("/ui/serving/{name}")
async def model_serving(
    request: Request, name: str, who: SignedIn, state: ServerDep
) -> HTMLResponse:
    """One model's traffic per version and its last predictions with feedback labels."""
    who.require_model(name)
    rows = await run_in_threadpool(traffic_rows, state, lambda model: model == name)
    versions = await run_in_threadpool(state.models.versions, name)
    if not rows and not versions:
        raise ApiError(404, f"no model '{name}' in the registry")
    recent = None
    if state.logger is not None:
        await run_in_threadpool(state.logger.sync, SYNC_SECONDS)
        recent = await run_in_threadpool(recent_predictions, state, name)
    return page(
        request,
        "serving_model.html",
        who,
        name=name,
        rows=rows,
        traffic=traffic_chart(rows),
        recent=recent,
    )


def traffic_rows(state: Server, visible: Any) -> list[dict[str, Any]]:
    """Per (model, version) that ``visible`` accepts: requests, errors, error rate, rows
    scored, requests per minute and latency quantiles (seconds, from the histogram)."""
    rows = []
    for (model, version), t in state.metrics.traffic(visible).items():
        requests = t["requests"]
        rows.append(
            {
                "model": model,
                "version": version,
                "requests": int(requests),
                "errors": int(t["errors"]),
                "error_rate": t["errors"] / requests if requests else None,
                "rows": int(t["rows"]),
                "per_minute": t["per_minute"],
                "latency": [latency(quantile(t["buckets"], q)) for q in (0.5, 0.95, 0.99)],
            }
        )
    return sorted(rows, key=order)


def latency(bound: float | None) -> str:
    """A latency quantile (a histogram bucket's upper bound, seconds) for people."""
    if bound is None:
        return "–"
    if math.isinf(bound):
        return "over the largest bucket"
    return f"≤ {number(bound * 1000)} ms"


def order(row: dict[str, Any]) -> tuple[str, int, str]:
    """Models by name, their versions by number."""
    version = str(row["version"])
    return row["model"], int(version) if version.isdigit() else 0, version


def traffic_chart(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Requests and errors per model version, as bars."""
    return {
        "type": "bar",
        "labels": [f"{r['model']} v{r['version']}" for r in rows],
        "datasets": [
            {"label": "requests", "data": [r["requests"] for r in rows]},
            {"label": "errors", "data": [r["errors"] for r in rows]},
        ],
    }


def recent_predictions(state: Server, name: str) -> list[dict[str, Any]]:
    """The model's last predictions, newest first: when, version, request id, prediction,
    probabilities, feedback label (None until given) and inputs."""
    log = read_log(state.cfg.prediction_log.store, name, last=RECENT)
    probas = [c for c in log.columns if c.startswith("proba_")]
    inputs = [c for c in log.columns if c not in {*LOG_HEAD, "prediction", "label", *probas}]
    out = []
    for row in log.iloc[::-1].to_dict("records"):
        out.append(
            {
                "time": row["ts"],
                "version": row["version"],
                "request_id": row["request_id"],
                "prediction": row["prediction"],
                "proba": [(c.removeprefix("proba_"), row[c]) for c in probas if present(row[c])],
                "label": row["label"] if present(row["label"]) else None,
                "inputs": [(c, row[c]) for c in inputs if present(row[c])],
            }
        )
    return out


def present(value: Any) -> bool:
    """A logged value that is there (not NaN or None)."""
    return not (value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA)
