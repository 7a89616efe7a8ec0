"""The caller's projects and a project's audit log (registry and access changes)."""

from __future__ import annotations

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from automl.serving.deps import Administered, CallerDep, LimitedRoute, ServerDep
from automl.serving.schemas import ERRORS

router = APIRouter(route_class=LimitedRoute, responses=ERRORS)


@router.get("/v1/projects", tags=["models"])
async def projects(who: CallerDep) -> dict:
    """The caller's projects and role in each."""
    roles = [{"project": p, "role": r} for p, r in who.roles.items()]
    return {"user": who.user, "projects": roles}


@router.get("/v1/projects/{project}/audit", tags=["admin"])
async def audit(
    project: Administered, state: ServerDep, last: int = Query(50, ge=1, le=1000)
) -> dict:
    """The project's management actions and registry changes (who promoted, unaliased or
    deleted which model version), newest first (project admins only)."""
    entries = await run_in_threadpool(state.auth.audit_log, project, last)
    return {"project": project, "audit": entries}
