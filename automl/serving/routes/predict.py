"""Predictions (the compiled fast path for small requests, the pipeline otherwise) and
feedback labels for them."""

from __future__ import annotations

import logging
import uuid
from contextlib import suppress
from typing import Any

import numpy as np
import pandas as pd
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from automl.errors import ContractError
from automl.serving.deps import Editable, LimitedRoute, Served, ServerDep, Started
from automl.serving.fastpath import Fallback
from automl.serving.inputs import ApiError, parse
from automl.serving.models import ServedModel
from automl.serving.schemas import (
    ERRORS,
    REQUEST_ID_RE,
    Accepted,
    CsvText,
    FeedbackBody,
    PredictJson,
    request_body,
)

log = logging.getLogger("automl.serving")
router = APIRouter(tags=["predict"], route_class=LimitedRoute, responses=ERRORS)
PREDICT_BODY = request_body({"application/json": PredictJson, "text/csv": CsvText})


@router.post("/v1/models/{name}/predict", openapi_extra=PREDICT_BODY)
async def predict(
    started: Started,
    served: Served,
    state: ServerDep,
    request: Request,
    contributions: bool = Query(False, description="per-feature contributions"),
) -> JSONResponse:
    """Labels and probabilities (or values) for one record or a batch."""
    name, limits = served.name, state.cfg.limits
    with state.metrics.observe("predict", name, served.version, started):
        body = await request.body()
        content_type = request.headers.get("content-type", "")
        records = parse(body, content_type, int(limits.max_batch_rows))
        if contributions and served.explain is None:
            family = served.model.manifest.get("model_family")
            raise ApiError(422, f"no per-feature contributions for a '{family}' model")
        output, X, features, path = None, None, None, "fast"
        if len(records) <= int(state.cfg.fast_path.max_rows):
            with suppress(Fallback):
                output, X = served.score_fast(records)
        if output is None:
            path = "pipeline"
            output, features = await run_in_threadpool(score_frame, served, records)
        state.metrics.rows(name, served.version, path, len(records))
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
        if state.logger is not None:
            state.logger.log(request_id, name, served.version, records, predictions, proba, classes)
        # labels are strings and the numbers finite floats (tolist): plain JSON as it is
        return JSONResponse(answer, headers={"X-Request-ID": request_id})


@router.post("/v1/models/{name}/feedback")
async def feedback(body: FeedbackBody, name: Editable, state: ServerDep) -> Accepted:
    """True labels for earlier predictions, by request id and record number (editor)."""
    await state.find(name, name)
    items = [(item.request_id, item.row, item.label) for item in body.feedback]
    state.prediction_log().feedback(items)
    return Accepted(accepted=len(items))


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


def request_id_of(request: Request) -> str:
    """The caller's ``X-Request-ID`` when it is a sane token, else a new one."""
    given = request.headers.get("x-request-id", "")
    return given if REQUEST_ID_RE.match(given) else uuid.uuid4().hex
