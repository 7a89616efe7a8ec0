"""Liveness, readiness and Prometheus metrics.

No API key is needed, but model names are shown only to a caller whose key may see them:
readiness lists the loaded models of the caller's projects, and ``/metrics`` keeps the
samples of those models (all of them when ``metrics.public`` is true).
"""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from automl.services.registry import project_of
from automl.serving.deps import LimitedRoute, MaybeCaller, ServerDep
from automl.serving.models import MB

log = logging.getLogger("automl.serving")

router = APIRouter(tags=["health"], route_class=LimitedRoute)


@router.get("/health/live")
async def live() -> dict:
    """The process answers."""
    return {"status": "alive"}


@router.get("/health/ready")
async def ready(state: ServerDep, who: MaybeCaller) -> JSONResponse:
    """Preloading is done and the auth database answers (503 otherwise); with a key, the
    loaded models of the caller's projects, and the model cache: its bounds, how many
    models it holds and their memory (MiB, estimated at load), per model for the
    caller's."""
    if not state.ready:
        return JSONResponse({"status": "starting"}, status_code=503)
    try:
        await run_in_threadpool(state.auth.ping)
    except Exception:  # any database failure means not ready (its details only in the log)
        log.exception("readiness: the auth database does not answer")
        return JSONResponse({"status": "auth database down"}, 503)
    answer: dict = {"status": "ready"}
    if who is not None:
        cache = state.cache
        usage = cache.usage()
        mine = {f"{n}/{v}": size for n, v, size in usage if who.can(project_of(n), "viewer")}
        answer["models"] = list(mine)
        answer["cache"] = {
            "size": cache.size,
            "max_memory_mb": None if cache.max_memory is None else cache.max_memory / MB,
            "models": len(usage),
            "memory_mb": round(sum(size for _, _, size in usage) / MB, 3),
            "model_memory_mb": {ref: round(size / MB, 3) for ref, size in mine.items()},
        }
    return JSONResponse(answer)


@router.get("/metrics")
async def prometheus(state: ServerDep, who: MaybeCaller) -> Response:
    """Prometheus metrics: requests, errors and latency per model and version (the
    caller's projects' models only, unless ``metrics.public``)."""
    if state.cfg.metrics.get("public", False):
        body, content_type = state.metrics.render()
    else:
        body, content_type = state.metrics.render(
            lambda model: who is not None and who.can(project_of(model), "viewer")
        )
    return Response(body, media_type=content_type)
