"""The projects overview: per project its models, their latest and aliased versions, the
last training, serving traffic and the monitoring status at a glance."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from automl.monitoring.history import latest
from automl.services.registry import project_of
from automl.serving.deps import LimitedRoute, Server, ServerDep
from automl.serving.ui.web import Board, Dashboard, SignedIn, Visitor, page

router = APIRouter(route_class=LimitedRoute)


@router.get("/ui/")
async def overview(request: Request, who: SignedIn, state: ServerDep, board: Board) -> HTMLResponse:
    """One card per project of the visitor."""
    projects = await run_in_threadpool(project_cards, who, state, board)
    return page(request, "overview.html", who, projects=projects)


def project_cards(who: Visitor, state: Server, board: Dashboard) -> list[dict[str, Any]]:
    """Per project: its models with latest version, aliases, last registration, requests
    since start and the newest monitoring status."""
    table = state.models.table()
    traffic = state.metrics.traffic(who.sees)
    checks = latest(board.history.lines())
    cards = {
        p: {
            "name": p,
            "role": who.caller.roles.get(p) or "site admin",
            "models": [],
            "last_run": None,
        }
        for p in who.projects
    }
    for row in table.to_dict("records"):
        project = project_of(row["name"])
        if project not in cards:
            continue
        served = [v for (m, _), v in traffic.items() if m == row["name"]]
        check = checks.get(row["name"])
        cards[project]["models"].append(
            {
                "name": row["name"],
                "latest": row["latest"],
                "versions": row["versions"],
                "updated": row["updated"],
                "aliases": sorted(
                    row["aliases"].split() if isinstance(row["aliases"], str) else []
                ),
                "requests": sum(v["requests"] for v in served),
                "per_minute": sum(v["per_minute"] for v in served),
                "status": None if check is None else check["status"],
                "checked": None if check is None else check["time"],
            }
        )
    for run in board.runs.runs():  # the newest run of each project, registered or not
        card = cards.get(run.project or "")
        if card is not None and (
            card["last_run"] is None or run.started > card["last_run"].started
        ):
            card["last_run"] = run
    for card in cards.values():
        models = card["models"]
        card["trained"] = max((m["updated"] for m in models), default=None)
        card["worst"] = worst_status([m["status"] for m in models])
    return list(cards.values())


def worst_status(statuses: list[str | None]) -> str | None:
    """The worst known status (drift > warning > ok), None when nothing was checked."""
    for status in ("drift", "warning", "ok"):
        if status in statuses:
            return status
    return None
