"""What every dashboard page shares: the signed-in visitor (a FastAPI dependency), forms
with their CSRF check, and rendering (Jinja2, autoescaped, with security headers).

A page declares ``who: Visitor`` (``SignedIn``) and gets the caller behind the session
cookie, with roles read fresh from the identity store; a signed-out visitor is sent to
the sign-in page. Errors are :class:`~automl.serving.inputs.ApiError`, which the app
answers as an HTML page under ``/ui/`` (and as JSON elsewhere).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from automl.monitoring.history import History
from automl.services.identity import ROLES, SITE, Caller, denied
from automl.services.registry import project_of
from automl.services.runs import RunIndex
from automl.serving.deps import Server, server
from automl.serving.inputs import ApiError
from automl.serving.ui.session import COOKIE, Session, Sessions

SECTIONS = [  # (path, label, shown to): the navigation
    ("/ui/", "Overview", "viewer"),
    ("/ui/runs", "Runs", "viewer"),
    ("/ui/models", "Models", "viewer"),
    ("/ui/monitoring", "Monitoring", "viewer"),
    ("/ui/serving", "Serving", "viewer"),
    ("/ui/data", "Data", "viewer"),
    ("/ui/admin", "Admin", "admin"),
]
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'; "
    "base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass
class Dashboard:
    """The dashboard's state in one app: its config (``ui``), sessions, the monitoring
    history and the runs index."""

    cfg: Any
    sessions: Sessions
    history: History
    runs: RunIndex

    @classmethod
    def build(cls, cfg: Any) -> Dashboard:
        ui, output = cfg.ui, Path(str(cfg.paths.output_dir)).expanduser()
        return cls(
            cfg=ui,
            sessions=Sessions(ui.session_secret, ui.session_hours, ui.secure_cookie),
            history=History(cfg.monitoring.get("history")),
            runs=RunIndex([output / str(d) for d in ui.runs_dirs], ui.refresh_seconds),
        )


def dashboard(request: Request) -> Dashboard:
    return request.app.state.dashboard


Board = Annotated[Dashboard, Depends(dashboard)]


@dataclass(frozen=True)
class Visitor:
    """A signed-in browser: the caller (roles as of now) and its session."""

    caller: Caller
    session: Session
    csrf: str
    projects: tuple[str, ...]  # the projects shown: one's own; a site admin's: all known

    @property
    def user(self) -> str:
        return self.caller.user

    @property
    def site_admin(self) -> bool:
        return self.caller.roles.get(SITE) == "admin"

    def can(self, project: str, role: str = "viewer") -> bool:
        """``role`` (or more) on ``project`` (a site admin has every role)."""
        return self.caller.can(project, role)

    def sees(self, name: str) -> bool:
        """A model (``<project>.<dataset>``) of a project this visitor may view."""
        return self.can(project_of(name))

    def administers(self) -> list[str]:
        """The projects this visitor is admin of."""
        return [p for p in self.projects if self.caller.can(p, "admin")]

    def require(self, project: str, role: str, what: str) -> None:
        """403 (the API's wording) unless this visitor has ``role`` on ``project``."""
        if not self.can(project, role):
            raise ApiError(403, str(denied(self.user, role, what)))

    def require_model(self, name: str, role: str = "viewer") -> str:
        self.require(project_of(name), role, f"model '{name}'")
        return name


def sessions(request: Request) -> Sessions:
    return dashboard(request).sessions


async def visitor(request: Request) -> Visitor | None:
    """The signed-in visitor of the request's session cookie, or None."""
    keeper = sessions(request)
    session = keeper.read(request.cookies.get(COOKIE))
    if session is None:
        return None
    state: Server = await server(request)
    known, found = state.auth.remembered(f"id:{session.key_id}")
    if not known:
        found = await run_in_threadpool(state.auth.holder, session.key_id)
    if found is None or found.user != session.user:
        return None  # the key was revoked (or given to someone else): signed out
    projects = set(found.roles) - {SITE}
    if found.roles.get(SITE) == "admin":
        projects |= await run_in_threadpool(known_projects, state)
    return Visitor(found, session, keeper.csrf(session), tuple(sorted(projects)))


def known_projects(state: Server) -> set[str]:
    """Every project with a member or a registered model (what a site admin sees)."""
    members = {row["project"] for row in state.auth.roles()}
    models = {project_of(name) for name in state.models.table()["name"]}
    return (members | models) - {SITE}


class SignInNeeded(Exception):
    """A page that needs a session, asked for without one."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


async def signed_in(request: Request) -> Visitor:
    """The visitor, or a redirect to the sign-in page (which comes back here after)."""
    found = await visitor(request)
    if found is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInNeeded(target if request.method == "GET" else "/ui/")
    return found


SignedIn = Annotated[Visitor, Depends(signed_in)]


def to_sign_in(request: Request, exc: SignInNeeded) -> RedirectResponse:
    """303 to the sign-in page, remembering a local page to come back to."""
    return RedirectResponse(f"/ui/sign-in?next={quote(exc.next_path, safe='/')}", 303)


def local_path(path: str | None) -> str:
    """``path`` when it is a dashboard page of this site, else the overview (no open
    redirect to another site)."""
    if path and path.startswith("/ui/") and not path.startswith("//") and "\\" not in path:
        return path
    return "/ui/"


async def posted(request: Request) -> dict[str, str]:
    """The fields of a posted form, one value each (the last of a repeated field)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise ApiError(415, "send the form as application/x-www-form-urlencoded")
    body = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}


async def form(request: Request, who: Visitor) -> dict[str, str]:
    """The fields of a form ``who`` posted, once its CSRF token (a field, or the
    ``X-CSRF-Token`` header htmx sends) is the session's."""
    fields = await posted(request)
    token = fields.pop("csrf", None) or request.headers.get("x-csrf-token")
    if not sessions(request).csrf_ok(who.session, token):
        raise ApiError(
            403,
            "this form has expired or did not come from this site (CSRF check failed): "
            "reload the page and send it again",
        )
    return fields


def pages_of(total: int, size: int) -> int:
    """How many pages of ``size`` rows ``total`` rows fill (at least one)."""
    return max(1, math.ceil(total / max(int(size), 1)))


def timestamp(value: Any) -> str:
    """A date for people: ISO strings and unix seconds as ``YYYY-MM-DD HH:MM`` (UTC)."""
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, int | float):
        return datetime.fromtimestamp(float(value), UTC).strftime("%Y-%m-%d %H:%M:%S")
    return str(value).replace("T", " ").split("+")[0].split(".")[0]


def number(value: Any, digits: int = 4) -> str:
    """A metric for people: 4 significant digits, ``–`` for none."""
    if value is None or value == "":
        return "–"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 1:
        return f"{int(value):,}"
    return f"{value:.{digits}g}"


ALLOWED_SHOWN = 12  # allowed values of a contract column shown before "+N more"


def contract_rows(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """A bundle's input contract for the contract table: one row per column with its
    role (target, feature, or checked only) and at most ``ALLOWED_SHOWN`` allowed values."""
    target, features = manifest.get("target"), set(manifest.get("features") or [])
    rows = []
    for column, spec in ((manifest.get("contract") or {}).get("columns") or {}).items():
        spec = spec or {}
        allowed = spec.get("allowed")
        role = "target" if column == target else "feature" if column in features else "checked only"
        rows.append(
            {
                "column": column,
                "role": role,
                "dtype": spec.get("dtype"),
                "nullable": spec.get("nullable"),
                "required": spec.get("required"),
                "unique": spec.get("unique"),
                "min": spec.get("min"),
                "max": spec.get("max"),
                "allowed": None if allowed is None else [str(v) for v in allowed[:ALLOWED_SHOWN]],
                "more": 0 if allowed is None else max(0, len(allowed) - ALLOWED_SHOWN),
            }
        )
    return rows


def chart(spec: dict[str, Any]) -> str:
    """A chart spec as JSON for a ``<script type="application/json">`` block (``<``, ``>``
    and ``&`` as ``\\u`` escapes, so no data can end the block or open a comment)."""
    text = json.dumps(spec, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


ENV = Environment(
    loader=PackageLoader("automl.serving.ui", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.filters |= {"ts": timestamp, "num": number, "chart": chart, "project": project_of}
ENV.globals |= {"ROLES": ROLES}


def page(
    request: Request,
    template: str,
    who: Visitor | None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    """The rendered ``template`` with the navigation for ``who``, and security headers."""
    here = request.url.path
    nav = []
    if who is not None:
        admin = who.site_admin or bool(who.administers())
        nav = [
            (path, label, path == here or (path != "/ui/" and here.startswith(path)))
            for path, label, role in SECTIONS
            if role != "admin" or admin
        ]
    html = ENV.get_template(template).render(
        request=request, who=who, nav=nav, path=here, **context
    )
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def standalone(html: str) -> HTMLResponse:
    """A standalone HTML report (batch monitoring, data profile) in a CSP sandbox: no
    scripts, no requests, inline styles and data: images only."""
    sandbox = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'"
    return HTMLResponse(html, headers=SECURITY_HEADERS | {"Content-Security-Policy": sandbox})


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    """An error as a page of the dashboard (the API answers the same errors as JSON)."""
    return page(request, "error.html", None, status=status, status_code=status, message=message)


def visible(who: Visitor, names: Iterable[str]) -> list[str]:
    """The model names among ``names`` whose project ``who`` may view."""
    return [n for n in names if who.sees(n)]
