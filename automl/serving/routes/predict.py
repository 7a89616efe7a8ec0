"""Predictions (the compiled fast path for small requests, the pipeline otherwise) and
feedback labels for them.

Feedback is accepted only for (request id, row) pairs the prediction log holds for that
model, with a label of the model's classes (classification) or a finite number
(regression); one bad item refuses the whole request (422 naming each bad item). An input
the model cannot score, or whose output is not finite, is a 422, never a 500.

``?contributions=true`` adds each input column's contribution to each record's output
(``automl.bundle.explain``: every model family and ensembles; on the output's scale, so
base value + contributions = the probability or value), scored on the pipeline path.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from contextlib import suppress
from typing import Any

import numpy as np
import orjson
import pandas as pd
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from automl.bundle.explain import Explanation
from automl.errors import AutomlError, ContractError
from automl.serving.deps import (
    Editable,
    LimitedRoute,
    Served,
    Server,
    ServerDep,
    Started,
    allowed,
    authenticated,
    key_of,
    served_model,
)
from automl.serving.fastpath import Fallback
from automl.serving.inputs import ApiError, Rows, parse
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
INLINE_BYTES = 65536  # bodies up to this size are parsed on the event loop (microseconds)


@router.post("/v1/models/{name}/predict", openapi_extra=PREDICT_BODY)
async def predict(
    started: Started,
    served: Served,
    state: ServerDep,
    request: Request,
    contributions: bool = Query(
        False, description="each input column's contribution to the output (probability/value)"
    ),
) -> JSONResponse:
    """Labels and probabilities (or values) for one record or a batch."""
    return await answer_predict(state, served, request, contributions, started)


async def shortcut(state: Server, request: Request, name: str) -> Response:
    """``POST /v1/models/{name}/predict`` with no query string (the latest version, no
    contributions), answered without FastAPI's routing and dependency solving (about
    0.6 ms a request): the checks of :func:`predict`'s dependencies, in their order, by the
    same functions, then the same handler. (``automl.serving.app.PredictShortcut``.)"""
    started = time.perf_counter()
    who = await authenticated(state, key_of(request.headers))
    served = await served_model(allowed(who, name, "viewer"), state)
    return await answer_predict(state, served, request, False, started)


async def answer_predict(
    state: Server, served: ServedModel, request: Request, contributions: bool, started: float
) -> Response:
    """The predict route's work once the caller, the model and the options are known."""
    name, limits = served.name, state.limits
    with state.metrics.observe("predict", name, served.version, started):
        body = await request.body()
        content_type = request.headers.get("content-type", "")
        max_rows = limits.max_batch_rows
        if len(body) <= INLINE_BYTES:
            rows = parse(body, content_type, max_rows)
        else:  # a batch: parsed off the event loop
            rows = await run_in_threadpool(parse, body, content_type, max_rows)
        if contributions and not served.model.explainable:
            raise ApiError(
                422,
                "no contributions: this model's bundle has no background sample (it predates "
                "explanations); retrain it",
            )
        output, features, path = None, None, "fast"
        if not contributions and isinstance(rows, list) and len(rows) <= limits.fast_rows:
            # values the compiled path cannot score: the pipeline names the problem
            with suppress(Fallback, ValueError, TypeError, ArithmeticError):
                output = served.score_fast(rows)
        if output is None:
            path = "pipeline"
            output, features = await run_in_threadpool(score_frame, served, rows)
        state.metrics.rows(name, served.version, path, len(rows))
        values = None
        if contributions:
            values = await run_in_threadpool(explain, served, features, rows)
        request_id = request_id_of(request)
        if path == "fast":
            answer, predictions, proba = respond(served, request_id, path, output, values)
        else:  # a batch's answer is built and encoded off the event loop
            answer, predictions, proba = await run_in_threadpool(
                respond, served, request_id, path, output, values
            )
        if state.logger is not None:
            classes = served.model.classes
            state.logger.log(request_id, name, served.version, rows, predictions, proba, classes)
        return answer


class FastJSON(JSONResponse):
    """A JSON body encoded by orjson (the standard library's encoder costs several times
    more per answer); for bodies of plain values only: strings, finite floats, lists."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def respond(
    served: ServedModel,
    request_id: str,
    path: str,
    output: Any,
    contributions: Explanation | None,
) -> tuple[JSONResponse, list, np.ndarray | None]:
    """(the response, the predictions, the probabilities) for a model's output."""
    check_finite(output)
    answer: dict[str, Any] = {
        "model": served.name,
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
    if contributions is not None:
        answer["contributions"] = contributions.records()
        answer["explanation"] = {
            "output": contributions.describe(),
            "method": contributions.method,
            "notes": contributions.notes,
        }
    # labels are strings and the numbers finite floats (tolist): plain JSON as it is
    return FastJSON(answer, headers={"X-Request-ID": request_id}), predictions, proba


@router.post("/v1/models/{name}/feedback")
async def feedback(body: FeedbackBody, name: Editable, state: ServerDep) -> Accepted:
    """True labels for earlier predictions of this model, by request id and record number
    (editor). All or nothing: one bad item is a 422 naming it, and nothing is stored."""
    logger = state.prediction_log()
    await state.find(name, name)
    if not await run_in_threadpool(logger.sync):
        raise ApiError(503, "the prediction log is busy: send the feedback again shortly")
    keys = [(item.request_id, item.row) for item in body.feedback]
    issued = await run_in_threadpool(logger.store.issued, name, keys)
    classes: dict[int, list[str] | None] = {}
    items, errors = [], []
    for n, item in enumerate(body.feedback):
        where = {"field": f"body.feedback.{n}", "request_id": item.request_id, "row": item.row}
        version = issued.get((item.request_id, item.row))
        if version is None:
            expected = f"no prediction of model '{name}' with this request id and row"
            errors.append({**where, "expected": expected})
            continue
        if version not in classes:
            served = await run_in_threadpool(state.cache.get, name, version)
            classes[version] = served.model.classes
        label, problem = checked_label(item.label, classes[version])
        if problem:
            errors.append({**where, "version": version, "expected": problem})
        else:
            items.append((item.request_id, item.row, label, name, version))
    if errors:
        message = f"{len(errors)} feedback item(s) refused, none stored: see errors"
        raise ApiError(422, message, errors[:100])
    logger.feedback(items)
    return Accepted(accepted=len(items))


def checked_label(label: Any, classes: list[str] | None) -> tuple[Any, str | None]:
    """(the label as stored, None) or (None, what was expected instead)."""
    if classes is not None:
        found = next((c for c in classes if str(c) == str(label)), None)
        if found is None:
            return None, f"'{label}' is not a class of the model (classes: {classes})"
        return found, None
    if isinstance(label, bool) or not isinstance(label, int | float):
        return None, "a number (the model predicts values)"
    try:
        value = float(label)
    except OverflowError:
        value = math.inf
    if not math.isfinite(value):
        return None, "a finite number within the float range"
    return label, None


def check_finite(output: Any) -> None:
    """A 422 naming the records whose prediction is not a finite number."""
    values = np.asarray(output, dtype=float)
    bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)[:20].tolist()
        raise ApiError(
            422,
            f"the model's output is not a finite number for record(s) {rows}: "
            "an input value is outside the range the model can handle",
            [{"row": r, "expected": "inputs within the training data's range"} for r in rows],
        )


def too_large(rows: Rows) -> list[str]:
    """The columns with a number beyond what a float32 model can hold."""
    limit = float(np.finfo(np.float32).max)
    columns = []
    for record in rows.to_dict("records") if isinstance(rows, pd.DataFrame) else rows:
        for column, value in record.items():
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if number and column not in columns and abs(value) > limit:
                columns.append(column)
    return columns


def score_frame(served: ServedModel, rows: Rows) -> tuple[np.ndarray, pd.DataFrame]:
    """The vectorised path; a broken contract or unusable values are a 422."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame.from_records(rows)
    try:
        features = served.model.prepare(frame)
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
    except (ValueError, TypeError, ArithmeticError) as exc:  # e.g. unseen categories
        columns = too_large(rows)
        if columns:
            errors = [{"column": c, "expected": "a value the model can hold"} for c in columns]
            raise ApiError(
                422, f"value too large for the model in column(s) {columns}", errors
            ) from None
        raise ApiError(422, f"the model cannot score this input: {exc}") from None


def explain(served: ServedModel, features: pd.DataFrame, rows: Rows) -> Explanation:
    """Each input column's contribution per record; an input the explainer cannot take
    (or whose contributions are not finite) is a 422."""
    try:
        explanation = served.contributions(features)
        check_finite(explanation.values)
        return explanation
    except ApiError:
        raise
    except Exception as exc:
        log.warning("contributions refused for %s: %s", served.name, exc)
        columns = too_large(rows)
        if columns:
            errors = [{"column": c, "expected": "a value the model can hold"} for c in columns]
            message = f"no contributions for values this large in column(s) {columns}"
            raise ApiError(422, message, errors) from None
        message = str(exc) if isinstance(exc, AutomlError) else "the explainer failed"
        raise ApiError(422, f"no contributions for this input: {message}") from None


def request_id_of(request: Request) -> str:
    """The caller's ``X-Request-ID`` when it is a sane token, else a new one."""
    given = request.headers.get("x-request-id", "")
    return given if REQUEST_ID_RE.match(given) else uuid.uuid4().hex
