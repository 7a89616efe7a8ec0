"""The FastAPI application: auth, model listing and metadata, prediction, feedback, metrics.

``create_app(cfg)`` builds it from the composed ``conf/apps/serve.yaml``; ``from_env()`` is
the factory uvicorn workers call (the config travels as a file named by
``$AUTOML_SERVE_CONFIG``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid
from contextlib import asynccontextmanager, suppress
from typing import Any

import numpy as np
import pandas as pd
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from omegaconf import OmegaConf
from starlette.concurrency import run_in_threadpool

from automl.bundle.registry import Registry
from automl.data.dataset import clean
from automl.errors import AutomlError, ContractError
from automl.monitoring.alerts import Alerter
from automl.monitoring.drift import (
    STATUSES,
    check_drift,
    check_performance,
    load_monitoring,
    select_window,
)
from automl.services.identity import AuthStore, Caller
from automl.serving.fastpath import Fallback
from automl.serving.inputs import ApiError, jsonable, parse
from automl.serving.metrics import Metrics
from automl.serving.models import ModelCache, ServedModel
from automl.serving.prediction_log import PredictionLogger, read_log

log = logging.getLogger("automl.serving")
CONFIG_ENV = "AUTOML_SERVE_CONFIG"
REQUEST_ID = re.compile(r"^[\w.-]{1,64}$")
BEARER = "bearer "
BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "oneOf": [
                    {"type": "object", "description": "one record: {column: value}"},
                    {"type": "array", "items": {"type": "object"}, "description": "records"},
                    {
                        "type": "object",
                        "required": ["columns", "data"],
                        "properties": {
                            "columns": {"type": "array", "items": {"type": "string"}},
                            "data": {"type": "array", "items": {"type": "array"}},
                        },
                    },
                ]
            }
        },
        "text/csv": {"schema": {"type": "string", "description": "CSV with a header row"}},
    },
}
FEEDBACK_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["feedback"],
                "properties": {
                    "feedback": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["request_id", "label"],
                            "properties": {
                                "request_id": {"type": "string"},
                                "row": {"type": "integer", "minimum": 0, "default": 0},
                                "label": {},
                            },
                        },
                    }
                },
            }
        }
    },
}


def project_of(name: str) -> str:
    """A model's project: the part of ``<project>.<dataset>`` before the first dot."""
    return name.split(".", 1)[0]


def input_schema(served: ServedModel) -> dict[str, Any]:
    """A JSON Schema of one input record, generated from the model's contract."""
    contract = served.model.input_contract
    types = {"float": "number", "int": "number", "bool": "boolean", "category": "string"}
    properties = {}
    for col, spec in contract.columns.items():
        kind = types.get(spec.dtype, "string")
        prop: dict[str, Any] = {"type": [kind, "null"] if spec.nullable else kind}
        if spec.dtype == "datetime":
            prop["format"] = "date-time"
        if spec.min is not None:
            prop["minimum"] = spec.min
        if spec.max is not None:
            prop["maximum"] = spec.max
        if spec.allowed is not None:
            prop["enum"] = [str(v) if spec.dtype == "category" else v for v in spec.allowed]
        properties[col] = prop
    required = [c for c, s in contract.columns.items() if s.required]
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": not contract.strict,
    }


def create_app(cfg: Any) -> FastAPI:
    """The server for a composed serve config."""
    registry = Registry(cfg.registry.uri, cfg.registry.store)
    cache = ModelCache(registry, cfg.cache, cfg.fast_path, cfg.contributions)
    auth = AuthStore(cfg.auth.url, ttl=cfg.auth.cache_ttl)
    metrics = Metrics(list(cfg.metrics.latency_buckets))
    limits = cfg.limits
    fast_rows = int(cfg.fast_path.max_rows)
    state: dict[str, Any] = {"ready": False, "logger": None}
    watch = load_monitoring(cfg.monitoring)
    alerter = Alerter(watch.alerts)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if cfg.prediction_log.enabled:
            state["logger"] = PredictionLogger(cfg.prediction_log)
        for ref in cfg.preload:
            name, version = await run_in_threadpool(cache.resolve, ref)
            await run_in_threadpool(cache.get, name, version)
        state["ready"] = True
        log.info("ready: %d model(s) preloaded", len(cfg.preload))
        yield
        if state["logger"] is not None:
            await run_in_threadpool(state["logger"].close)

    app = FastAPI(
        title="automl serving",
        description="Predictions from the models in the automl registry. "
        "Send an API key as `Authorization: Bearer <key>` or `X-API-Key: <key>`.",
        version="1",
        lifespan=lifespan,
    )

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        content = {"detail": exc.message, "errors": jsonable(exc.errors)}
        return JSONResponse(content, status_code=exc.status, headers=headers)

    def caller(request: Request) -> Caller:
        key = request.headers.get("x-api-key")
        header = request.headers.get("authorization", "")
        if key is None and header.lower().startswith(BEARER):
            key = header[len(BEARER) :].strip()
        if not key:
            raise ApiError(401, "no API key: send 'Authorization: Bearer <key>'")
        found = auth.caller(key)
        if found is None:
            raise ApiError(401, "unknown or revoked API key")
        return found

    def allowed(who: Caller, name: str, role: str = "viewer") -> None:
        """403 for another project's model, whether it exists or not."""
        if not who.can(project_of(name), role):
            raise ApiError(403, f"no {role} access to model '{name}' for user '{who.user}'")

    def reference(name: str, version: int | None, alias: str | None) -> str:
        if version is not None and alias is not None:
            raise ApiError(422, "give either version or alias, not both")
        if alias is not None:
            return f"{name}@{alias}"
        return name if version is None else f"{name}/{version}"

    async def served_model(name: str, version: int | None, alias: str | None) -> ServedModel:
        ref = reference(name, version, alias)
        try:
            resolved = cache.resolve(ref)
        except AutomlError as exc:
            raise ApiError(404, str(exc)) from None
        if cache.has(*resolved):
            return cache.get(*resolved)
        return await run_in_threadpool(cache.get, *resolved)

    def versions(name: str) -> list[dict[str, Any]]:
        table = registry.versions(name)
        keep = ["version", "aliases", "created_at", "family", "task"]
        out = []
        for row in table.to_dict("records"):
            entry = {k: row[k] for k in keep}
            entry["aliases"] = entry["aliases"].split() if entry["aliases"] else []
            entry["metrics"] = {k: v for k, v in row.items() if k not in table.columns[:10]}
            out.append(entry)
        return jsonable(out)

    @app.get("/health/live", tags=["health"])
    async def live() -> dict:
        """The process answers."""
        return {"status": "alive"}

    @app.get("/health/ready", tags=["health"])
    async def ready() -> JSONResponse:
        """Preloading is done and the auth database answers (503 otherwise)."""
        if not state["ready"]:
            return JSONResponse({"status": "starting"}, status_code=503)
        try:
            await run_in_threadpool(auth.ping)
        except Exception as exc:  # any database failure means not ready
            return JSONResponse({"status": "auth database down", "detail": str(exc)}, 503)
        loaded = [f"{n}/{v}" for n, v in cache.cached()]
        return JSONResponse({"status": "ready", "models": loaded})

    @app.get("/metrics", tags=["health"])
    async def prometheus() -> Response:
        """Prometheus metrics: requests, errors and latency per model and version."""
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @app.get("/v1/projects", tags=["models"])
    async def projects(request: Request) -> dict:
        """The caller's projects and role in each."""
        who = caller(request)
        roles = [{"project": p, "role": r} for p, r in who.roles.items()]
        return {"user": who.user, "projects": roles}

    @app.get("/v1/models", tags=["models"])
    async def models(request: Request) -> dict:
        """The models of the caller's projects, with versions and aliases."""
        who = caller(request)
        table = await run_in_threadpool(registry.models)
        names = [n for n in table["name"] if who.can(project_of(n), "viewer")]
        listed = [{"name": n, "project": project_of(n), "versions": versions(n)} for n in names]
        return {"models": listed}

    @app.get("/v1/models/{name}", tags=["models"])
    async def model_versions(request: Request, name: str) -> dict:
        """The versions (with aliases and metrics) of one model."""
        allowed(caller(request), name)
        found = await run_in_threadpool(versions, name)
        if not found:
            raise ApiError(404, f"no model '{name}' in the registry")
        return {"name": name, "project": project_of(name), "versions": found}

    @app.get("/v1/models/{name}/metadata", tags=["models"])
    async def metadata(
        request: Request,
        name: str,
        version: int | None = Query(None, ge=1, description="a version number"),
        alias: str | None = Query(None, pattern=r"^[\w.-]+$", description="e.g. production"),
    ) -> dict:
        """What a model expects and gives: input schema, classes, metrics, training date."""
        allowed(caller(request), name)
        served = await served_model(name, version, alias)
        m = served.model.manifest
        with metrics.observe("metadata", name, served.version):
            return jsonable(
                {
                    "name": name,
                    "version": served.version,
                    "project": project_of(name),
                    "dataset": m.get("dataset"),
                    "family": m.get("model_family"),
                    "task": m.get("task"),
                    "target": m.get("target"),
                    "classes": m.get("classes"),
                    "metrics": m.get("metrics", {}),
                    "trained_at": m.get("created_at"),
                    "train_rows": m.get("train_rows"),
                    "features": m.get("features"),
                    "input_schema": input_schema(served),
                    "fast_path": served.fast_path_reason,
                    "contributions": served.explain is not None,
                }
            )

    @app.post("/v1/models/{name}/predict", tags=["predict"], openapi_extra={"requestBody": BODY})
    async def predict(
        request: Request,
        name: str,
        version: int | None = Query(None, ge=1, description="a version number"),
        alias: str | None = Query(None, pattern=r"^[\w.-]+$", description="e.g. production"),
        contributions: bool = Query(False, description="per-feature contributions"),
    ) -> Response:
        """Labels and probabilities (or values) for one record or a batch."""
        started = time.perf_counter()
        who = caller(request)
        allowed(who, name)
        served = await served_model(name, version, alias)
        with metrics.observe("predict", name, served.version, started):
            body = await read_body(request, int(limits.max_body_bytes))
            records = parse(
                body, request.headers.get("content-type", ""), int(limits.max_batch_rows)
            )
            if contributions and served.explain is None:
                family = served.model.manifest.get("model_family")
                raise ApiError(422, f"no per-feature contributions for a '{family}' model")
            output, X, features, path = None, None, None, "fast"
            if len(records) <= fast_rows:
                with suppress(Fallback):
                    output, X = served.score_fast(records)
            if output is None:
                path = "pipeline"
                output, features = await run_in_threadpool(score_frame, served, records)
            metrics.rows(name, served.version, path, len(records))
            request_id = request_id_of(request)
            answer: dict[str, Any] = {
                "model": name,
                "version": served.version,
                "request_id": request_id,
                "path": path,
            }
            classes = served.model.classes
            proba = None
            if classes is None:
                predictions = np.asarray(output, dtype=float).tolist()
            else:
                proba = np.asarray(output)
                predictions = served.model.labels(proba).tolist()  # a tuned threshold too
                answer["probabilities"] = [dict(zip(classes, row)) for row in proba.tolist()]
            answer["predictions"] = predictions
            if contributions:
                values = await run_in_threadpool(served.contributions, X, features)
                answer["contributions"] = format_contributions(served, values)
            if state["logger"] is not None:
                state["logger"].log(
                    request_id, name, served.version, records, predictions, proba, classes
                )
            # labels are strings and the numbers finite floats (tolist): plain JSON as it is
            return JSONResponse(answer, headers={"X-Request-ID": request_id})

    @app.post(
        "/v1/models/{name}/feedback",
        tags=["predict"],
        openapi_extra={"requestBody": FEEDBACK_BODY},
    )
    async def feedback(request: Request, name: str) -> dict:
        """True labels for earlier predictions, by request id and record number (editor)."""
        allowed(caller(request), name, "editor")
        try:
            cache.resolve(name)
        except AutomlError as exc:
            raise ApiError(404, str(exc)) from None
        body = await read_body(request, int(limits.max_body_bytes))
        items = parse_feedback(body)
        if state["logger"] is None:
            raise ApiError(409, "the prediction log is off (prediction_log.enabled=false)")
        state["logger"].feedback(items)
        return {"accepted": len(items)}

    @app.get("/v1/models/{name}/monitoring", tags=["models"])
    async def monitoring_report(
        request: Request,
        name: str,
        version: int | None = Query(None, ge=1, description="a version number"),
        alias: str | None = Query(None, pattern=r"^[\w.-]+$", description="e.g. production"),
    ) -> dict:
        """Drift of the model's recent predictions (the window of `monitoring.window`)
        against its training profile, and its performance where feedback labels exist."""
        allowed(caller(request), name)
        served = await served_model(name, version, alias)
        if state["logger"] is None:
            raise ApiError(409, "the prediction log is off (prediction_log.enabled=false)")
        with metrics.observe("monitoring", name, served.version):
            await run_in_threadpool(state["logger"].sync)
            report = await run_in_threadpool(
                monitor_window, served, cfg.prediction_log.store, watch, name
            )
            report["alert"] = await run_in_threadpool(
                alerter, f"{name}/{served.version}", report["status"], report["signals"]
            )
            return jsonable(report)

    @app.get("/v1/projects/{project}/audit", tags=["admin"])
    async def audit(request: Request, project: str, last: int = Query(50, ge=1, le=1000)) -> dict:
        """The project's management actions, newest first (project admins only)."""
        who = caller(request)
        if not who.can(project, "admin"):
            raise ApiError(403, f"no admin access to project '{project}' for user '{who.user}'")
        return {"project": project, "audit": await run_in_threadpool(auth.audit_log, project, last)}

    return app


def monitor_window(served: ServedModel, store: Any, watch: Any, name: str) -> dict[str, Any]:
    """Drift and performance over the window of ``name``'s logged predictions."""
    model = served.model
    window = select_window(
        read_log(
            store,
            name,
            version=served.version,
            last=None if watch.window.seconds is not None else int(watch.window.rows),
            since_seconds=watch.window.seconds,
        ),
        watch.window,
    )
    features = clean(window.reindex(columns=model.manifest["features"]), model.manifest["clean"])
    window = pd.concat([features, window.drop(columns=features.columns, errors="ignore")], axis=1)
    drift = check_drift(model, window, watch)
    performance = check_performance(
        model.manifest.get("metrics", {}), window, model.task, model.classes, watch.performance
    )
    status = max(drift["status"], performance["status"], key=STATUSES.index)
    return {
        "model": name,
        "version": served.version,
        "rows": int(len(window)),
        "from": float(window["ts"].min()) if len(window) else None,
        "to": float(window["ts"].max()) if len(window) else None,
        "status": status,
        "signals": drift["signals"] + performance.get("signals", []),
        "drift": drift,
        "performance": performance,
    }


def score_frame(served: ServedModel, records: list[dict]) -> tuple[np.ndarray, pd.DataFrame]:
    """The vectorised path; a broken contract or unusable values are a 422."""
    try:
        features = served.model.prepare(pd.DataFrame.from_records(records))
    except ContractError as exc:
        # a value of the wrong type also fails the column's other checks: name it once
        wrong_type = {f["column"] for f in exc.failures if f["check"].startswith("coerce_dtype")}
        failures = [
            f
            for f in exc.failures
            if f["column"] not in wrong_type or f["check"].startswith("coerce_dtype")
        ]
        errors = [
            {
                "column": f["column"],
                "check": f["check"],
                "expected": f["reason"],
                "count": f["count"],
                "rows": f["rows"],
                "values": f["values"],
            }
            for f in failures
        ]
        message = str(exc)
        if wrong_type:
            message = (
                f"{len(errors)} problem(s) with the input: see errors (one per column and check)"
            )
        raise ApiError(422, message, errors) from None
    except Exception as exc:  # any failure to read the input is the input's fault
        log.debug("input check failed", exc_info=True)
        raise ApiError(422, f"the input cannot be checked against the contract: {exc}") from None
    try:
        return served.predict(features), features
    except (ValueError, TypeError) as exc:  # e.g. an encoder that rejects unseen categories
        raise ApiError(422, f"the model cannot score this input: {exc}") from None


def format_contributions(served: ServedModel, values: np.ndarray) -> list[dict]:
    """Per record: {feature: value, "(bias)": value}, per class for multiclass models."""
    names = [*served.feature_names, "(bias)"]
    values = np.asarray(values)
    if values.ndim == 2:
        return [dict(zip(names, row)) for row in values.tolist()]
    classes = served.model.classes or []
    return [
        {c: dict(zip(names, per_class)) for c, per_class in zip(classes, row)}
        for row in values.tolist()
    ]


async def read_body(request: Request, limit: int) -> bytes:
    """The body, or 413 as soon as it is known to be larger than ``limit`` bytes."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise ApiError(413, f"the body has {length} bytes; at most {limit} (split the batch)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"the body is larger than {limit} bytes (split the batch)")
        chunks.append(chunk)
    return b"".join(chunks)


def request_id_of(request: Request) -> str:
    """The caller's ``X-Request-ID`` when it is a sane token, else a new one."""
    given = request.headers.get("x-request-id", "")
    return given if REQUEST_ID.match(given) else uuid.uuid4().hex


def parse_feedback(body: bytes) -> list[tuple[str, int, Any]]:
    """(request_id, row, label) items of a feedback body (``ApiError`` when malformed)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise ApiError(
            400, 'malformed JSON: send {"feedback": [{"request_id", "label"}]}'
        ) from None
    items = data.get("feedback") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise ApiError(422, 'send {"feedback": [{"request_id": ..., "row": 0, "label": ...}]}')
    out, errors = [], []
    for i, item in enumerate(items):
        rid = item.get("request_id") if isinstance(item, dict) else None
        row = item.get("row", 0) if isinstance(item, dict) else None
        label = item.get("label") if isinstance(item, dict) else None
        if not isinstance(rid, str) or not REQUEST_ID.match(rid):
            errors.append({"item": i, "field": "request_id", "expected": "a request id string"})
        elif not isinstance(row, int) or isinstance(row, bool) or row < 0:
            errors.append({"item": i, "field": "row", "expected": "a record number >= 0"})
        elif not isinstance(label, str | int | float) or isinstance(label, bool):
            errors.append({"item": i, "field": "label", "expected": "a class label or value"})
        else:
            out.append((rid, row, label))
    if errors:
        raise ApiError(422, "malformed feedback", errors[:20])
    return out


def from_env() -> FastAPI:
    """The app for a uvicorn worker: the config file named by ``$AUTOML_SERVE_CONFIG``."""
    cfg = OmegaConf.load(os.environ[CONFIG_ENV])
    if not logging.getLogger().handlers:  # a worker process: Hydra configured only the parent
        logging.basicConfig(level=cfg.log_level.upper(), format="[%(levelname)s] %(message)s")
    return create_app(cfg)
