"""Dashboard section: administration, and every visitor's own API keys.

A site admin (role ``admin`` on project ``*``) administers the whole site: users,
projects, roles, every key and the whole audit log. A project admin administers their
projects only: the roles on them and their audit log; they never see other projects, nor
other users' keys. Anyone signed in manages their own keys at ``/ui/account``.

Every change goes through :class:`~automl.services.identity.AuthStore`'s audited methods
with the visitor as actor. A new key is shown once, on the page that answers the POST
(never in a redirect, a later page or the audit log); revoking a key or a role asks for
confirmation first (a POST without ``confirm=yes`` answers with the question).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from automl.config import check_name
from automl.errors import AutomlError
from automl.services.identity import AUDIT_ACTIONS, ROLES, SITE, denied
from automl.serving.deps import LimitedRoute, Server, ServerDep
from automl.serving.inputs import ApiError
from automl.serving.ui.web import Board, SignedIn, Visitor, form, page, pages_of

router = APIRouter(route_class=LimitedRoute)

DONE = {  # ?done= after a change: the notice shown (no data in the URL)
    "user": "User added.",
    "project": "Project added.",
    "granted": "Role granted.",
    "role-revoked": "Role revoked.",
    "key-revoked": "Key revoked: it no longer works, and sessions signed in with it ended.",
}
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
LABEL_CHARS = 200  # the longest key label the identity store keeps
PageNumber = Annotated[int, Query(alias="page", ge=1)]


# --------------------------------------------------------------------------- access


def require_admin(who: Visitor) -> None:
    """403 unless ``who`` administers the site or a project."""
    if not (who.site_admin or who.administers()):
        raise ApiError(403, str(denied(who.user, "admin", "the admin pages")))


def require_site_admin(who: Visitor) -> None:
    """403 unless ``who`` administers the site (users, projects, every key)."""
    who.require(SITE, "admin", "the site's users, projects and keys")


def scope(who: Visitor, project: str | None) -> list[str] | None:
    """The projects an admin page covers: ``project`` (once ``who`` administers it), else
    the visitor's administered projects (None: every project, for a site admin)."""
    if project:
        who.require(project, "admin", f"project '{project}'")
        return [project]
    return None if who.site_admin else who.administers()


def done_notice(request: Request) -> str:
    return DONE.get(request.query_params.get("done", ""), "")


def refused(exc: AutomlError) -> ApiError:
    """A refused change (unknown user or project, bad role...) as a 400."""
    return ApiError(400, str(exc))


# --------------------------------------------------------------------------- users and roles


@router.get("/ui/admin")
async def admin_home(
    request: Request,
    who: SignedIn,
    state: ServerDep,
    board: Board,
    project: Annotated[str | None, Query()] = None,
    page_number: PageNumber = 1,
    users_page: Annotated[int, Query(ge=1)] = 1,
) -> HTMLResponse:
    """Users and projects (site admins), the roles on the administered projects, with the
    forms to add users and projects and to grant and revoke roles."""
    require_admin(who)
    context = await run_in_threadpool(
        home_context, who, state, board.cfg.page_size, project, page_number, users_page
    )
    return page(request, "admin.html", who, notice=done_notice(request), **context)


def home_context(
    who: Visitor,
    state: Server,
    size: int,
    project: str | None,
    number: int,
    users_number: int,
) -> dict[str, Any]:
    """What the users-and-roles page shows to ``who``."""
    covered = scope(who, project)
    roles = state.auth.roles() if covered is None else state.auth.roles_on(covered)
    users = state.auth.users() if who.site_admin else []
    projects = state.auth.projects() if who.site_admin else []
    choices = [p["name"] for p in projects] if who.site_admin else who.administers()
    query = {"project": project} if project else {}
    return {
        "roles": roles[(number - 1) * size : number * size],
        "page": number,
        "pages": pages_of(len(roles), size),
        "roles_page": lambda n: "/ui/admin?" + urlencode({**query, "page": n}),
        "users": users[(users_number - 1) * size : users_number * size],
        "users_count": len(users),
        "users_pages": pages_of(len(users), size),
        "users_number": users_number,
        "users_url": lambda n: "/ui/admin?" + urlencode({**query, "users_page": n}),
        "projects": projects,
        "choices": choices,
        "project": project or "",
        "user_names": [u["name"] for u in users],
    }


async def home_change(done: str, change: Callable[[], Any]) -> Response:
    """Run ``change`` (a blocking, audited store call) and go back to the admin page with
    the notice ``done``."""
    try:
        await run_in_threadpool(change)
    except AutomlError as exc:
        raise refused(exc) from None
    return RedirectResponse(f"/ui/admin?done={done}", 303)


@router.post("/ui/admin/users")
async def add_user(request: Request, who: SignedIn, state: ServerDep) -> Response:
    """Add a user (site admins)."""
    fields = await form(request, who)
    require_site_admin(who)
    name = checked_name(fields.get("name", ""), "user")
    if name in {u["name"] for u in await run_in_threadpool(state.auth.users)}:
        raise ApiError(409, f"user '{name}' already exists")
    return await home_change("user", lambda: state.auth.add_user(name, actor=who.user))


@router.post("/ui/admin/projects")
async def add_project(request: Request, who: SignedIn, state: ServerDep) -> Response:
    """Add a project (site admins)."""
    fields = await form(request, who)
    require_site_admin(who)
    name = checked_name(fields.get("name", ""), "project")
    if "." in name:
        raise ApiError(400, f"a project name has no '.' (models are <project>.<dataset>): {name}")
    if name in {p["name"] for p in await run_in_threadpool(state.auth.projects)}:
        raise ApiError(409, f"project '{name}' already exists")
    return await home_change("project", lambda: state.auth.add_project(name, actor=who.user))


def checked_name(value: str, kind: str) -> str:
    """A new user's or project's name: letters, digits, ``_.-`` (400 otherwise)."""
    try:
        return check_name(value.strip())
    except AutomlError:
        raise ApiError(
            400, f"a {kind} name has letters, digits, '_', '.' and '-' (not first): {value!r}"
        ) from None


@router.post("/ui/admin/roles")
async def grant(request: Request, who: SignedIn, state: ServerDep) -> Response:
    """Give an existing user a role on a project the visitor administers."""
    fields = await form(request, who)
    project, user = fields.get("project", ""), fields.get("user", "").strip()
    who.require(project, "admin", f"project '{project}'")
    role = fields.get("role", "")
    if role not in ROLES:
        raise ApiError(400, f"role must be one of {', '.join(ROLES)}")
    if not user:
        raise ApiError(400, "give the name of the user to grant the role to")
    return await home_change("granted", lambda: state.auth.grant(user, project, role, who.user))


@router.post("/ui/admin/roles/revoke")
async def revoke_role(request: Request, who: SignedIn, state: ServerDep) -> Response:
    """Take a user's role on a project away (after confirmation)."""
    fields = await form(request, who)
    project, user = fields.get("project", ""), fields.get("user", "")
    who.require(project, "admin", f"project '{project}'")
    roles = await run_in_threadpool(state.auth.roles_on, [project])
    held = next((r["role"] for r in roles if r["user"] == user), None)
    if held is None:
        raise ApiError(404, f"user '{user}' has no role on project '{project}'")
    if fields.get("confirm") != "yes":
        return confirm_page(
            request,
            who,
            f"Take the role {held} on project {project} away from user {user}?",
            "/ui/admin/roles/revoke",
            {"user": user, "project": project},
            "Yes, revoke the role",
            "/ui/admin",
        )
    return await home_change(
        "role-revoked", lambda: state.auth.revoke_role(user, project, actor=who.user)
    )


def confirm_page(
    request: Request,
    who: Visitor,
    question: str,
    action: str,
    fields: dict[str, str],
    yes: str,
    back: str,
) -> HTMLResponse:
    """The "Are you sure?" page of a destructive action: a Yes form and a way back."""
    return page(
        request,
        "admin_confirm.html",
        who,
        question=question,
        action=action,
        fields=fields,
        yes=yes,
        back=back,
    )


# --------------------------------------------------------------------------- keys


@router.get("/ui/admin/keys")
async def all_keys(
    request: Request, who: SignedIn, state: ServerDep, board: Board, page_number: PageNumber = 1
) -> HTMLResponse:
    """Every API key (ids only) with its owner, and a form to create one (site admins)."""
    require_site_admin(who)
    keys, users = await run_in_threadpool(lambda: (state.auth.keys(), state.auth.users()))
    size = board.cfg.page_size
    newest = keys[::-1][(page_number - 1) * size : page_number * size]
    return page(
        request,
        "admin_keys.html",
        who,
        keys=newest,
        page=page_number,
        pages=pages_of(len(keys), size),
        keys_page=lambda n: f"/ui/admin/keys?page={n}",
        user_names=[u["name"] for u in users],
        notice=done_notice(request),
    )


@router.post("/ui/admin/keys")
async def create_key(request: Request, who: SignedIn, state: ServerDep) -> HTMLResponse:
    """A new key for any user (site admins), shown once."""
    fields = await form(request, who)
    require_site_admin(who)
    user = fields.get("user", "").strip()
    return await new_key(request, who, state, user, fields.get("label", ""), "/ui/admin/keys")


@router.post("/ui/admin/keys/revoke")
async def revoke_any_key(request: Request, who: SignedIn, state: ServerDep) -> Response:
    """Revoke any key (site admins), after confirmation."""
    fields = await form(request, who)
    require_site_admin(who)
    keys = await run_in_threadpool(state.auth.keys)
    return await revoke(request, who, state, fields, keys, "/ui/admin/keys")


async def new_key(
    request: Request, who: Visitor, state: Server, user: str, label: str, back: str
) -> HTMLResponse:
    """Create a key for ``user`` and answer with the page that shows it, the one time."""
    label = label.strip()
    if len(label) > LABEL_CHARS:
        raise ApiError(400, f"a key label has at most {LABEL_CHARS} characters")
    try:
        key = await run_in_threadpool(state.auth.create_key, user, who.user, label)
    except AutomlError as exc:
        raise refused(exc) from None
    return page(request, "admin_key.html", who, key=key, owner=user, label=label, back=back)


async def revoke(
    request: Request,
    who: Visitor,
    state: Server,
    fields: dict[str, str],
    keys: list[dict[str, Any]],
    back: str,
) -> Response:
    """Revoke the key ``fields["key_id"]`` when it is one of ``keys`` (404 otherwise, the
    same for a foreign and an unknown id), once confirmed (the question's Yes form posts
    to the same path); then back to the page ``back``."""
    key_id = fields.get("key_id", "")
    found = next((k for k in keys if k["key_id"] == key_id), None)
    if found is None:
        raise ApiError(404, f"no API key '{key_id}' here")
    if found["revoked_at"]:
        raise ApiError(409, f"key {key_id} was already revoked ({found['revoked_at']})")
    if fields.get("confirm") != "yes":
        mine = " (the key of this session: you will be signed out)"
        question = (
            f"Revoke the key {key_id} of user {found['user']}"
            f"{' labelled ' + repr(found['label']) if found['label'] else ''}?"
            f"{mine if key_id == who.caller.key_id else ''} Whoever uses it is refused "
            "from then on."
        )
        return confirm_page(
            request, who, question, request.url.path, {"key_id": key_id}, "Yes, revoke the key",
            back,
        )  # fmt: skip
    try:
        await run_in_threadpool(state.auth.revoke_key, key_id, who.user)
    except AutomlError as exc:
        raise refused(exc) from None
    return RedirectResponse(f"{back}?done=key-revoked", 303)


# --------------------------------------------------------------------------- own keys


@router.get("/ui/account")
async def account(request: Request, who: SignedIn, state: ServerDep) -> HTMLResponse:
    """The visitor's own keys (ids only), with forms to create and revoke one."""
    keys = await run_in_threadpool(state.auth.keys, who.user)
    return page(
        request,
        "admin_account.html",
        who,
        keys=keys[::-1],
        roles=sorted(who.caller.roles.items()),
        notice=done_notice(request),
        admin=who.site_admin or bool(who.administers()),
    )


@router.post("/ui/account/keys")
async def create_own_key(request: Request, who: SignedIn, state: ServerDep) -> HTMLResponse:
    """A new key for the visitor, shown once."""
    fields = await form(request, who)
    return await new_key(request, who, state, who.user, fields.get("label", ""), "/ui/account")


@router.post("/ui/account/keys/revoke")
async def revoke_own_key(request: Request, who: SignedIn, state: ServerDep) -> Response:
    """Revoke one of the visitor's own keys, after confirmation."""
    fields = await form(request, who)
    keys = await run_in_threadpool(state.auth.keys, who.user)
    return await revoke(request, who, state, fields, keys, "/ui/account")


# --------------------------------------------------------------------------- audit log


@router.get("/ui/admin/audit")
async def audit(
    request: Request,
    who: SignedIn,
    state: ServerDep,
    board: Board,
    actor: Annotated[str, Query(max_length=200)] = "",
    action: Annotated[str, Query(max_length=40)] = "",
    target: Annotated[str, Query(max_length=400)] = "",
    project: Annotated[str, Query(max_length=200)] = "",
    since: Annotated[str, Query(max_length=10)] = "",
    page_number: PageNumber = 1,
) -> HTMLResponse:
    """The audit log, newest first, filtered and paged: every entry for site admins, the
    entries of their projects for project admins."""
    require_admin(who)
    if since and not DATE.fullmatch(since):
        raise ApiError(400, "since is a date: YYYY-MM-DD")
    covered = scope(who, project or None)
    size = board.cfg.page_size
    entries, total = await run_in_threadpool(
        lambda: state.auth.audit_page(
            covered,
            actor=actor.strip() or None,
            action=action or None,
            target=target.strip() or None,
            since=since or None,
            offset=(page_number - 1) * size,
            limit=size,
        )
    )
    filters = {"actor": actor, "action": action, "target": target, "project": project}
    filters = {k: v for k, v in (filters | {"since": since}).items() if v}
    choices = (
        [p["name"] for p in await run_in_threadpool(state.auth.projects)]
        if who.site_admin
        else who.administers()
    )
    return page(
        request,
        "admin_audit.html",
        who,
        entries=[{**e, "about": details(e)} for e in entries],
        total=total,
        page=page_number,
        pages=pages_of(total, size),
        audit_page=lambda n: "/ui/admin/audit?" + urlencode({**filters, "page": n}),
        filters=filters,
        actions=AUDIT_ACTIONS,
        choices=choices,
    )


def details(entry: dict[str, Any]) -> str:
    """An audit entry's details as ``key=value`` pairs."""
    return ", ".join(f"{k}={v}" for k, v in (entry.get("details") or {}).items())
