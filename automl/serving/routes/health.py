"""Liveness, readiness and Prometheus metrics (no API key needed)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from automl.serving.deps import LimitedRoute, ServerDep

router = APIRouter(tags=["health"], route_class=LimitedRoute)


@router.get("/health/live")
async def live() -> dict:
    """The process answers."""
    return {"status": "alive"}


@router.get("/health/ready")
async def ready(state: ServerDep) -> JSONResponse:
    """Preloading is done and the auth database answers (503 otherwise)."""
    if not state.ready:
        return JSONResponse({"status": "starting"}, status_code=503)
    try:
        await run_in_threadpool(state.auth.ping)
    except Exception as exc:  # any database failure means not ready
        return JSONResponse({"status": "auth database down", "detail": str(exc)}, 503)
    loaded = [f"{n}/{v}" for n, v in state.cache.cached()]
    return JSONResponse({"status": "ready", "models": loaded})


@router.get("/metrics")
async def prometheus(state: ServerDep) -> Response:
    """Prometheus metrics: requests, errors and latency per model and version."""
    body, content_type = state.metrics.render()
    return Response(body, media_type=content_type)
