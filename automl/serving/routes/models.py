"""The models a caller may see: listing, versions (from the registry service) and each
version's metadata (from the loaded model)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from automl.plain import jsonable
from automl.services.registry import project_of
from automl.serving.deps import CallerDep, LimitedRoute, Served, ServerDep, Viewable
from automl.serving.inputs import ApiError
from automl.serving.models import ServedModel
from automl.serving.schemas import ERRORS

router = APIRouter(tags=["models"], route_class=LimitedRoute, responses=ERRORS)
JSON_TYPES = {"float": "number", "int": "number", "bool": "boolean", "category": "string"}


@router.get("/v1/models")
async def models(who: CallerDep, state: ServerDep) -> dict:
    """The models of the caller's projects, with versions and aliases."""
    listed = await run_in_threadpool(state.models.listing, lambda p: who.can(p, "viewer"))
    return {"models": jsonable(listed)}


@router.get("/v1/models/{name}")
async def model_versions(name: Viewable, state: ServerDep) -> dict:
    """The versions (with aliases and metrics) of one model."""
    found = await run_in_threadpool(state.models.versions, name)
    if not found:
        raise ApiError(404, f"no model '{name}' in the registry")
    return {"name": name, "project": project_of(name), "versions": jsonable(found)}


@router.get("/v1/models/{name}/metadata")
async def metadata(served: Served, state: ServerDep) -> dict:
    """What a model expects and gives: input schema, classes, metrics, training date."""
    m = served.model.manifest
    with state.metrics.observe("metadata", served.name, served.version):
        return jsonable(
            {
                "name": served.name,
                "version": served.version,
                "project": project_of(served.name),
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
                "contributions": served.model.explainable,  # any family, with a background
            }
        )


def input_schema(served: ServedModel) -> dict[str, Any]:
    """A JSON Schema of one input record, generated from the model's contract."""
    contract = served.model.input_contract
    properties = {}
    for col, spec in contract.columns.items():
        kind = JSON_TYPES.get(spec.dtype, "string")
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
