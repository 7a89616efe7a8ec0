"""Online monitoring: the verdict of :func:`automl.services.monitoring.verdict` on the
window of a model's prediction log, with alerts."""

from __future__ import annotations

from typing import Any

import pandas as pd
from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from automl.data.dataset import clean
from automl.monitoring import history
from automl.monitoring.drift import select_window
from automl.plain import jsonable
from automl.services.monitoring import verdict
from automl.serving.deps import LimitedRoute, Served, Server, ServerDep
from automl.serving.models import ServedModel
from automl.serving.prediction_log import read_log
from automl.serving.schemas import ERRORS

router = APIRouter(tags=["models"], route_class=LimitedRoute, responses=ERRORS)


@router.get("/v1/models/{name}/monitoring")
async def monitoring(served: Served, state: ServerDep) -> dict:
    """Drift of the model's recent predictions (the window of `monitoring.window`)
    against its training profile, and its performance where feedback labels exist."""
    with state.metrics.observe("monitoring", served.name, served.version):
        return jsonable(await check(served, state))


async def check(served: ServedModel, state: Server) -> dict[str, Any]:
    """The online check (the API's and the dashboard's): the verdict on the model's log
    window, its alert (if one is due), recorded in ``monitoring.history``."""
    logger = state.prediction_log()
    await run_in_threadpool(logger.sync)
    settings = state.cfg.monitoring
    report = await run_in_threadpool(monitor_log, served, state.cfg.prediction_log.store, settings)
    report["alert"] = await run_in_threadpool(
        state.alerter, f"{served.name}/{served.version}", report["status"], report["signals"]
    )
    line = history.entry(served.name, served.version, "online", report)
    await run_in_threadpool(history.record, settings.history, line)
    return report


def monitor_log(served: ServedModel, store: Any, settings: Any) -> dict[str, Any]:
    """The verdict on the window of ``served``'s logged predictions (inputs typed as the
    contract says; feedback labels in ``label``)."""
    model, window_cfg = served.model, settings.window
    last = None if window_cfg.seconds is not None else int(window_cfg.rows)
    logged = read_log(
        store, served.name, version=served.version, last=last, since_seconds=window_cfg.seconds
    )
    window = select_window(logged, window_cfg)
    features = clean(window.reindex(columns=model.manifest["features"]), model.manifest["clean"])
    window = pd.concat([features, window.drop(columns=features.columns, errors="ignore")], axis=1)
    return {
        "model": served.name,
        "version": served.version,
        "rows": int(len(window)),
        "from": float(window["ts"].min()) if len(window) else None,
        "to": float(window["ts"].max()) if len(window) else None,
        **verdict(model, window, settings),
    }
