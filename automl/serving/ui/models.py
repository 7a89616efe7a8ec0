"""The model registry: the visitor's models, each model's versions with metrics and
aliases, each version's lineage and input contract, and alias changes.

Promoting a version to an alias, moving an alias and removing one go through the registry
service (which checks the ``editor`` role again and writes the audit log with who made
the change). Moving an alias away from a version and removing one are confirmed first: the
form posted without ``confirm=yes`` answers a page that asks.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote

import yaml
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from automl.errors import AutomlError
from automl.services.identity import AccessDenied
from automl.services.registry import CHANGE_ROLE, project_of
from automl.serving.deps import LimitedRoute, Server, ServerDep
from automl.serving.inputs import ApiError
from automl.serving.ui.web import (
    Board,
    Dashboard,
    SignedIn,
    Visitor,
    contract_rows,
    form,
    page,
    pages_of,
)

log = logging.getLogger(__name__)
router = APIRouter(route_class=LimitedRoute)

ALIAS = re.compile(r"[\w.-]+")  # as the API's ?alias= and registry references
ALIAS_LENGTH = 100
AUDIT_SHOWN = 20  # newest audit entries of a model on its page
AUDIT_READ = 500  # newest audit entries of its project read to find them
NOTICES = {
    "promoted": "{alias} now points to version {version}.",
    "unchanged": "{alias} already pointed to version {version}: nothing changed.",
    "unaliased": "Alias {alias} removed.",
}
PageNumber = Annotated[int, Query(ge=1, alias="page")]


# --- pages ---


@router.get("/ui/models")
async def models_page(
    request: Request,
    who: SignedIn,
    state: ServerDep,
    board: Board,
    project: str | None = None,
    page_number: PageNumber = 1,
) -> HTMLResponse:
    """The visitor's models: versions, latest, aliases, last registration."""
    if project:
        who.require(project, "viewer", f"project '{project}'")
    rows = await run_in_threadpool(model_rows, who, state)
    projects = sorted({r["project"] for r in rows} | set(who.projects))
    shown = [r for r in rows if not project or r["project"] == project]
    size = board.cfg.page_size
    pages = pages_of(len(shown), size)
    number = min(page_number, pages)
    start = (number - 1) * size
    return page(
        request,
        "models.html",
        who,
        rows=shown[start : start + size],
        total=len(shown),
        projects=projects,
        project=project or "",
        page_number=number,
        pages=pages,
        page_url=lambda n: f"/ui/models?project={quote(project or '')}&page={n}",
    )


@router.get("/ui/models/{name}")
async def model_page(
    request: Request,
    name: str,
    who: SignedIn,
    state: ServerDep,
    board: Board,
    page_number: PageNumber = 1,
    done: str | None = None,
    alias: str | None = None,
) -> HTMLResponse:
    """Every version of one model with metrics, aliases and the run it came from; alias
    forms and the model's recent audit entries for editors and admins."""
    who.require_model(name)
    records = await known_records(state, name)
    editor = who.can(project_of(name), CHANGE_ROLE)
    audit = await run_in_threadpool(model_audit, state, name) if editor else []
    newest = records[::-1]
    size = board.cfg.page_size
    pages = pages_of(len(newest), size)
    number = min(page_number, pages)
    shown = newest[(number - 1) * size : number * size]
    for record in shown:
        record["run"] = await run_in_threadpool(run_of, record.get("run_dir"), board)
    aliases = aliases_of(records)
    return page(
        request,
        "model.html",
        who,
        name=name,
        versions=shown,
        all_versions=[r["version"] for r in newest],
        metric_names=metric_names(shown),
        aliases=sorted(aliases.items()),
        latest=records[-1],
        editor=editor,
        audit=audit,
        notice=notice(done, alias, aliases),
        page_number=number,
        pages=pages,
        page_url=lambda n: f"/ui/models/{quote(name)}?page={n}",
    )


@router.get("/ui/models/{name}/{version}")
async def version_page(
    request: Request, name: str, version: int, who: SignedIn, state: ServerDep, board: Board
) -> HTMLResponse:
    """One version: metrics, aliases, lineage, composed config, input contract."""
    who.require_model(name)
    records = await known_records(state, name)
    record = find_version(name, records, version)
    try:
        manifest = await run_in_threadpool(state.models.manifest, name, version)
    except (AutomlError, OSError, ValueError) as exc:
        log.warning("dashboard: manifest of %s/%d unreadable: %s", name, version, exc)
        raise ApiError(
            409,
            f"the stored bundle of {name}/{version} is missing or damaged: "
            "restore it or register the model again",
        ) from None
    record["run"] = await run_in_threadpool(run_of, record.get("run_dir"), board)
    return page(
        request,
        "model_version.html",
        who,
        name=name,
        record=record,
        m=manifest,
        metrics=manifest.get("metrics") or record["metrics"],
        config=config_text(manifest.get("config")),
        contract=contract_rows(manifest),
        strict=bool((manifest.get("contract") or {}).get("strict")),
        members=best_members(manifest.get("best_params")),
        editor=who.can(project_of(name), CHANGE_ROLE),
    )


# --- alias changes ---


@router.post("/ui/models/{name}/promote")
async def promote(request: Request, name: str, who: SignedIn, state: ServerDep) -> Response:
    """Point an alias at a version; moving an alias from another version asks first."""
    fields = await form(request, who)
    who.require_model(name, CHANGE_ROLE)
    alias = checked_alias(fields.get("alias", ""))
    version = checked_version(fields.get("version", ""))
    records = await known_records(state, name)
    find_version(name, records, version)
    current = aliases_of(records).get(alias)
    if current == version:
        return back_to(name, "unchanged", alias)
    if current is not None and fields.get("confirm") != "yes":
        return confirm(
            request,
            who,
            name,
            action="promote",
            question=f"{alias} now points to version {current}; move it to version {version}?",
            consequence=f"Requests for {name}@{alias} will be answered by version {version}.",
            fields={"version": str(version), "alias": alias},
            yes=f"Yes, move {alias} to version {version}",
        )
    await change(state.models.promote, f"{name}/{version}", alias, actor=who.user)
    return back_to(name, "promoted", alias)


@router.post("/ui/models/{name}/unalias")
async def unalias(request: Request, name: str, who: SignedIn, state: ServerDep) -> Response:
    """Remove an alias, once confirmed."""
    fields = await form(request, who)
    who.require_model(name, CHANGE_ROLE)
    alias = checked_alias(fields.get("alias", ""))
    aliases = aliases_of(await known_records(state, name))
    if alias not in aliases:
        raise ApiError(
            404, f"model '{name}' has no alias '{alias}' (aliases: {sorted(aliases) or 'none'})"
        )
    if fields.get("confirm") != "yes":
        return confirm(
            request,
            who,
            name,
            action="unalias",
            question=f"Remove the alias {alias} (now pointing to version {aliases[alias]})?",
            consequence=f"Requests for {name}@{alias} will fail until it is set again.",
            fields={"alias": alias},
            yes=f"Yes, remove {alias}",
        )
    await change(state.models.unalias, name, alias, actor=who.user)
    return back_to(name, "unaliased", alias)


def confirm(
    request: Request,
    who: Visitor,
    name: str,
    *,
    action: str,
    question: str,
    consequence: str,
    fields: dict[str, str],
    yes: str,
) -> HTMLResponse:
    """The page that asks before a destructive change (its form posts it again, confirmed)."""
    return page(
        request,
        "model_confirm.html",
        who,
        name=name,
        action=f"/ui/models/{quote(name)}/{action}",
        question=question,
        consequence=consequence,
        fields=fields,
        yes=yes,
    )


async def change(call: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Run a registry change off the event loop: a refused role stays a 403, anything else
    the registry refuses (e.g. changed meanwhile) is a 409 that names nothing else."""
    try:
        await run_in_threadpool(call, *args, **kwargs)
    except AccessDenied:
        raise
    except AutomlError as exc:
        log.warning("dashboard: registry change refused: %s", exc)
        raise ApiError(
            409, "the registry refused the change (changed meanwhile?): reload the page"
        ) from None


def back_to(name: str, what: str, alias: str) -> RedirectResponse:
    """Back to the model's page, which says what happened."""
    return RedirectResponse(f"/ui/models/{quote(name)}?done={what}&alias={quote(alias)}", 303)


def checked_alias(alias: str) -> str:
    """An alias as the registry accepts it (422 otherwise)."""
    alias = alias.strip()
    if not ALIAS.fullmatch(alias) or len(alias) > ALIAS_LENGTH:
        raise ApiError(
            422,
            f"an alias is 1 to {ALIAS_LENGTH} letters, digits, '_', '.' or '-' (e.g. production)",
        )
    return alias


def checked_version(value: str) -> int:
    """A version number (422 otherwise)."""
    if not value.strip().isdecimal() or int(value) < 1:
        raise ApiError(422, "version: a version number (1, 2, ...)")
    return int(value)


# --- reading the registry ---


async def known_records(state: Server, name: str) -> list[dict[str, Any]]:
    """The versions of ``name`` (oldest first); 404 naming nothing else when it has none.
    Call it after the role check, so a foreign model is a 403 like an unknown one."""
    records = await run_in_threadpool(state.models.records, name)
    if not records:
        raise ApiError(404, f"no model '{name}' in the registry")
    return records


def find_version(name: str, records: list[dict[str, Any]], version: int) -> dict[str, Any]:
    """The record of ``version``, or a 404 naming only this model's versions."""
    for record in records:
        if record["version"] == version:
            return record
    known = [r["version"] for r in records]
    raise ApiError(404, f"model '{name}' has no version {version} (versions: {known})")


def aliases_of(records: list[dict[str, Any]]) -> dict[str, int]:
    """alias -> version of a model's versions."""
    return {a: r["version"] for r in records for a in r["aliases"]}


def model_rows(who: Visitor, state: Server) -> list[dict[str, Any]]:
    """The visitor's models from the registry's one-row-per-model table."""
    rows = []
    for row in state.models.table().to_dict("records"):
        if not who.sees(row["name"]):
            continue
        listed = row["aliases"] if isinstance(row["aliases"], str) else ""  # None or NaN
        pairs = (a.rsplit("=", 1) for a in listed.split())
        rows.append(
            {
                "name": row["name"],
                "project": project_of(row["name"]),
                "versions": row["versions"],
                "latest": row["latest"],
                "updated": row["updated"],
                "aliases": sorted((alias, int(version)) for alias, version in pairs),
            }
        )
    return rows


def model_audit(state: Server, name: str) -> list[dict[str, Any]]:
    """The newest audit entries about ``name`` (promotions, alias removals, deletions)."""
    entries = state.auth.audit_log(project_of(name), AUDIT_READ)
    return [e for e in entries if e["target"] == name][:AUDIT_SHOWN]


def notice(what: str | None, alias: str | None, aliases: dict[str, int]) -> str | None:
    """What the last change did, told from the registry as it is now."""
    if what not in NOTICES or not alias or not ALIAS.fullmatch(alias):
        return None
    if (what == "unaliased") == (alias in aliases):
        return None  # the page no longer matches the notice (changed since): say nothing
    return NOTICES[what].format(alias=alias, version=aliases.get(alias))


def metric_names(records: list[dict[str, Any]]) -> list[str]:
    """The union of the versions' metric names, in the order first seen."""
    return list(dict.fromkeys(k for r in records for k in r["metrics"]))


def run_of(run_dir: str | None, board: Dashboard) -> dict[str, str | None]:
    """The run a version came from: its id in the runs section when the index has it,
    and its folder."""
    return {"id": board.runs.id_of(run_dir), "path": run_dir}


# --- one version's manifest, for people ---


def config_text(config: Any) -> str:
    """The composed (already redacted) config as YAML."""
    if not config:
        return ""
    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True, default_flow_style=False)


def best_members(best: Any) -> list[dict[str, Any]]:
    """The tuned members of the model (family, trial, weight, parameters): the ensemble
    form ``{"members": [...]}`` or, from older bundles, one flat mapping of parameters."""
    if not isinstance(best, dict):
        return []
    members = best.get("members")
    if not isinstance(members, list):
        members = [{"params": {k: v for k, v in best.items() if k != "threshold"}}]
    return [
        {
            "family": m.get("family"),
            "trial": m.get("trial"),
            "weight": m.get("weight"),
            "params": sorted((m.get("params") or {}).items()),
        }
        for m in members
        if isinstance(m, dict)
    ]
