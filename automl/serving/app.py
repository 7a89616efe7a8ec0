"""The FastAPI application: the routers of :mod:`automl.serving.routes` over one
:class:`~automl.serving.deps.Server` (registry service, model cache, identity store,
metrics, prediction log, alerts).

``create_app(cfg)`` builds it from the composed ``conf/apps/serve.yaml``; ``from_env()`` is
the factory uvicorn workers call (the resolved config travels as JSON in
``$AUTOML_SERVE_CONFIG``, never in a file: it may hold database passwords).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from omegaconf import OmegaConf
from starlette.concurrency import run_in_threadpool

from automl.config import as_data
from automl.plain import jsonable
from automl.redact import RedactingFilter
from automl.services.identity import AccessDenied
from automl.serving import ui
from automl.serving.deps import LimitedRequest, Server
from automl.serving.inputs import ApiError
from automl.serving.limits import RequestLimits
from automl.serving.prediction_log import PredictionLogger
from automl.serving.routes import health, models, monitoring, predict, projects
from automl.serving.ui.web import error_page

log = logging.getLogger("automl.serving")
CONFIG_ENV = "AUTOML_SERVE_CONFIG"
ROUTERS = (health.router, projects.router, models.router, predict.router, monitoring.router)


def create_app(cfg: Any) -> FastAPI:
    """The server for a composed serve config."""
    state = Server.build(cfg)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if cfg.prediction_log.enabled:
            state.logger = PredictionLogger(cfg.prediction_log, state.metrics.log_failed)
        for ref in cfg.preload:
            name, version = await run_in_threadpool(state.cache.resolve, ref)
            await run_in_threadpool(state.cache.get, name, version)
        state.ready = True
        log.info("ready: %d model(s) preloaded", len(cfg.preload))
        yield
        if state.logger is not None:
            wait = cfg.prediction_log.get("close_timeout")
            await run_in_threadpool(state.logger.close, None if wait is None else float(wait))

    app = FastAPI(
        title="automl serving",
        description="Predictions from the models in the automl registry. "
        "Send an API key as `Authorization: Bearer <key>` or `X-API-Key: <key>`.",
        version="1",
        lifespan=lifespan,
    )
    app.state.server = state
    app.add_middleware(PredictShortcut, state=state)  # inside the limits (added later)
    app.add_middleware(
        RequestLimits,
        max_concurrent=int(cfg.limits.max_concurrent_requests),
        timeout=float(cfg.limits.request_timeout),
    )
    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(AccessDenied, access_denied)
    app.add_exception_handler(RequestValidationError, invalid_request)
    for router in ROUTERS:
        app.include_router(router)
    if cfg.ui.enabled:
        ui.install(app, cfg)
    return app


PREDICT_PATH = re.compile(r"/v1/models/([^/]+)/predict")


class PredictShortcut:
    """ASGI middleware: ``POST /v1/models/{name}/predict`` without a query string goes
    straight to :func:`automl.serving.routes.predict.shortcut` (the same checks and handler
    as the route, without FastAPI's per-request routing and dependency solving, most of a
    one-record request's time); every other request, and the route's documentation, is
    the app's. Errors are answered as the app's handlers answer them."""

    def __init__(self, app: Any, state: Server) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        found = None
        if scope["type"] == "http" and scope["method"] == "POST" and not scope["query_string"]:
            found = PREDICT_PATH.fullmatch(scope["path"])
        if found is None:
            await self.app(scope, receive, send)
            return
        try:
            response = await predict.shortcut(self.state, LimitedRequest(scope, receive), found[1])
        except ApiError as exc:
            response = error(exc.status, exc.message, exc.errors)
        except AccessDenied as exc:
            response = error(403, str(exc))
        await response(scope, receive, send)


def error(status: int, message: str, errors: list[dict] | None = None) -> JSONResponse:
    """The one error body: ``{"detail": message, "errors": [...]}``."""
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    content = {"detail": jsonable(message), "errors": jsonable(errors or [])}
    return JSONResponse(content, status_code=status, headers=headers)


def answer(request: Request, status: int, message: str, errors: list[dict] | None = None):
    """The error as JSON, or as a page for the dashboard's paths."""
    if request.url.path.startswith("/ui/"):
        return error_page(request, status, message)
    return error(status, message, errors)


async def api_error(request: Request, exc: ApiError) -> Response:
    """An error the routes raise on purpose, as its status and body."""
    return answer(request, exc.status, exc.message, exc.errors)


async def access_denied(request: Request, exc: AccessDenied) -> Response:
    """403, worded the same whether the model or project exists or not."""
    return answer(request, 403, str(exc))


async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
    """A parameter or JSON body FastAPI could not validate: 400 for malformed JSON, else
    422 naming each field and what it expects."""
    found = exc.errors()
    if any(e["type"] == "json_invalid" for e in found):
        return error(400, "malformed JSON: " + "; ".join(str(e["msg"]) for e in found))
    errors = [
        {"field": ".".join(str(part) for part in e["loc"]), "expected": str(e["msg"])}
        for e in found[:20]
    ]
    if request.url.path.startswith("/ui/"):
        message = "; ".join(f"{e['field']}: {e['expected']}" for e in errors)
        return error_page(request, 422, message)
    return error(422, f"{len(found)} problem(s) with the request: see errors", errors)


def from_env() -> FastAPI:
    """The app for a uvicorn worker: the resolved config in ``$AUTOML_SERVE_CONFIG`` (JSON,
    read back literally: nothing in it is interpolated again)."""
    cfg = OmegaConf.create(as_data(json.loads(os.environ[CONFIG_ENV])))
    if not logging.getLogger().handlers:  # a worker process: Hydra configured only the parent
        logging.basicConfig(level=cfg.log_level.upper(), format="[%(levelname)s] %(message)s")
        for handler in logging.getLogger().handlers:
            handler.addFilter(RedactingFilter())
    return create_app(cfg)
