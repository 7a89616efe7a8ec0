"""What the routes share: the server's state and the FastAPI dependencies that turn a
request into a caller (API key -> identity), a role check and a resolved model.

A route declares what it needs (``who: CallerDep``, ``name: Viewable``, ``served: Served``)
and FastAPI runs the checks in that order: 401 without a valid key, 403 without the role
(the same answer whether the model exists or not), then 404 for an unknown model.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request, Security
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from automl.bundle.registry import Registry
from automl.errors import AutomlError
from automl.monitoring.alerts import Alerter
from automl.services.identity import AuthStore, Caller, denied
from automl.services.registry import RegistryService, project_of, reference
from automl.serving.inputs import ApiError, read_body
from automl.serving.metrics import Metrics
from automl.serving.models import ModelCache, ServedModel
from automl.serving.prediction_log import PredictionLogger


@dataclass(frozen=True)
class Limits:
    """The sizes every predict request is checked against, read from the config once
    (a config lookup costs microseconds, many times per request)."""

    max_body_bytes: int
    max_batch_rows: int
    fast_rows: int  # requests with at most this many records take the fast path


@dataclass
class Server:
    """The state of one app, built from the composed serve config."""

    cfg: Any
    models: RegistryService
    cache: ModelCache
    auth: AuthStore
    metrics: Metrics
    alerter: Alerter
    limits: Limits
    logger: PredictionLogger | None = None
    ready: bool = False

    @classmethod
    def build(cls, cfg: Any) -> Server:
        registry = Registry.at(cfg.registry)
        auth = AuthStore(cfg.auth.url, ttl=cfg.auth.cache_ttl)
        metrics = Metrics(list(cfg.metrics.latency_buckets))
        cache = ModelCache(
            registry, cfg.cache, cfg.fast_path, cfg.compiled, cfg.contributions, metrics
        )
        return cls(
            cfg=cfg,
            limits=Limits(
                int(cfg.limits.max_body_bytes),
                int(cfg.limits.max_batch_rows),
                int(cfg.fast_path.max_rows),
            ),
            models=RegistryService(registry, auth),
            cache=cache,
            auth=auth,
            metrics=metrics,
            alerter=Alerter(cfg.monitoring.alerts),
        )

    def prediction_log(self) -> PredictionLogger:
        """The prediction logger (409 when ``prediction_log.enabled`` is false)."""
        if self.logger is None:
            raise ApiError(409, "the prediction log is off (prediction_log.enabled=false)")
        return self.logger

    async def find(self, ref: str, name: str) -> tuple[str, int]:
        """(name, version) of ``ref``: a 404 that names only ``name``'s own versions and
        aliases (never another model, nor a path). The registry is read off the event loop."""
        hit = self.cache.remembered(ref)
        if hit is not None:
            return hit
        try:
            return await run_in_threadpool(self.cache.resolve, ref)
        except AutomlError:
            known = await run_in_threadpool(self.models.versions, name)
        if not known:
            raise ApiError(404, f"no model '{name}' in the registry")
        versions = [v["version"] for v in known]
        aliases = sorted({a for v in known for a in v["aliases"]})
        if "@" in ref:
            alias = ref.split("@", 1)[1]
            message = f"model '{name}' has no alias '{alias}' (aliases: {aliases or 'none'})"
        elif "/" in ref:
            number = ref.rsplit("/", 1)[1]
            message = f"model '{name}' has no version {number} (versions: {versions})"
        else:  # registered since the lookup failed
            message = f"no model '{name}' in the registry"
        raise ApiError(404, message)


class LimitedRequest(Request):
    """A request whose body is read at most ``limits.max_body_bytes`` long (413 beyond)."""

    async def body(self) -> bytes:
        if not hasattr(self, "_body"):
            limit = self.app.state.server.limits.max_body_bytes
            self._body = await read_body(self, limit)
        return self._body


class LimitedRoute(APIRoute):
    """The routes of this API: every body goes through :class:`LimitedRequest`."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()

        async def limited(request: Request) -> Response:
            return await handler(LimitedRequest(request.scope, request.receive))

        return limited


# Dependencies are ``async`` even when they do not wait: FastAPI runs a plain ``def``
# dependency in its thread pool, a thread hand-off per request.


async def server(request: Request) -> Server:
    """The app's :class:`Server`."""
    return request.app.state.server


async def clock() -> float:
    """When the request's handling began (the first dependency of timed routes)."""
    return time.perf_counter()


ServerDep = Annotated[Server, Depends(server)]
Started = Annotated[float, Depends(clock)]
api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key")
bearer = HTTPBearer(auto_error=False, description="an API key as a bearer token")


async def caller(
    state: ServerDep,
    key: Annotated[str | None, Security(api_key)],
    token: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> Caller:
    """The identity of the request's API key (``X-API-Key`` or ``Authorization: Bearer``)."""
    return await authenticated(state, key or (token.credentials if token is not None else None))


async def authenticated(state: Server, key: str | None) -> Caller:
    """The identity of ``key`` (401 without one, or for an unknown or revoked one)."""
    if not key:
        raise ApiError(401, "no API key: send 'Authorization: Bearer <key>'")
    found = await identify(state, key)
    if found is None:
        raise ApiError(401, "unknown or revoked API key")
    return found


def key_of(headers: Any) -> str | None:
    """The API key of request headers, read as the ``X-API-Key`` and bearer schemes of
    :func:`caller` read it (for the predict shortcut, which has no dependencies)."""
    key = headers.get("x-api-key")
    if key:
        return key
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    return credentials if scheme.lower() == "bearer" and credentials else None


async def maybe_caller(
    state: ServerDep,
    key: Annotated[str | None, Security(api_key)],
    token: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> Caller | None:
    """The identity of the request's API key, or None without a valid one (open routes)."""
    key = key or (token.credentials if token is not None else None)
    return await identify(state, key) if key else None


async def identify(state: Server, key: str) -> Caller | None:
    """The caller of ``key``: from the recent checks, else from the database (off the
    event loop, so one slow lookup never stalls other requests)."""
    known, found = state.auth.remembered(key)
    return found if known else await run_in_threadpool(state.auth.caller, key)


CallerDep = Annotated[Caller, Depends(caller)]
MaybeCaller = Annotated[Caller | None, Depends(maybe_caller)]
ModelName = Annotated[str, Path(description="a model: <project>.<dataset>")]


def model_role(role: str) -> Callable[..., Awaitable[str]]:
    """A dependency: the path's model name, once the caller has ``role`` on its project."""

    async def check(name: ModelName, who: CallerDep) -> str:
        return allowed(who, name, role)

    return check


def allowed(who: Caller, name: str, role: str) -> str:
    """``name``, once ``who`` has ``role`` on the model's project (403 otherwise)."""
    if not who.can(project_of(name), role):
        raise denied(who.user, role, f"model '{name}'")
    return name


def project_role(role: str) -> Callable[..., Awaitable[str]]:
    """A dependency: the path's project, once the caller has ``role`` on it."""

    async def check(project: str, who: CallerDep) -> str:
        if not who.can(project, role):
            raise denied(who.user, role, f"project '{project}'")
        return project

    return check


Viewable = Annotated[str, Depends(model_role("viewer"))]
Editable = Annotated[str, Depends(model_role("editor"))]
Administered = Annotated[str, Depends(project_role("admin"))]
Version = Annotated[int | None, Query(ge=1, description="a version number")]
Alias = Annotated[str | None, Query(pattern=r"^[\w.-]+$", description="e.g. production")]


async def served_model(
    name: Viewable, state: ServerDep, version: Version = None, alias: Alias = None
) -> ServedModel:
    """The model version ``?version=`` or ``?alias=`` names (default: the latest), loaded."""
    try:
        ref = reference(name, version, alias)
    except ValueError as exc:
        raise ApiError(422, str(exc)) from None
    resolved = await state.find(ref, name)
    if state.cache.has(*resolved):
        return state.cache.get(*resolved)
    return await run_in_threadpool(state.cache.get, *resolved)


Served = Annotated[ServedModel, Depends(served_model)]
