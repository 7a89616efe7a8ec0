"""Sign-in with an API key (then a session cookie) and sign-out."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from automl.serving.deps import LimitedRoute, ServerDep
from automl.serving.inputs import ApiError
from automl.serving.ui.session import COOKIE, SIGN_IN_COOKIE
from automl.serving.ui.web import SignedIn, form, local_path, page, posted, sessions, visitor

router = APIRouter(route_class=LimitedRoute)
SIGN_IN_MINUTES = 30  # the sign-in form is good for this long


@router.get("/ui/sign-in")
async def sign_in_form(request: Request, next: Annotated[str | None, Query()] = None) -> Response:
    """The sign-in page (the only page a signed-out visitor sees)."""
    if await visitor(request) is not None:
        return RedirectResponse(local_path(next), 303)
    return sign_in_page(request, local_path(next))


def sign_in_page(request: Request, next_path: str, problem: str = "", status: int = 200):
    """The form, with a fresh token bound to a short-lived cookie of its own."""
    keeper = sessions(request)
    nonce = secrets.token_urlsafe(16)
    response = page(
        request,
        "sign_in.html",
        None,
        status=status,
        token=keeper.sign_in_token(nonce),
        next_path=next_path,
        problem=problem,
    )
    response.set_cookie(SIGN_IN_COOKIE, nonce, **keeper.cookie_options(SIGN_IN_MINUTES * 60))
    return response


@router.post("/ui/sign-in")
async def sign_in(request: Request, state: ServerDep) -> Response:
    """Check the API key; on success a session cookie and the page asked for."""
    keeper = sessions(request)
    fields = await posted(request)
    nonce = request.cookies.get(SIGN_IN_COOKIE, "")
    token = fields.get("csrf", "") or ""
    if not nonce or not secrets.compare_digest(token, keeper.sign_in_token(nonce)):
        raise ApiError(
            403, "the sign-in form has expired or did not come from this site: reload it"
        )
    next_path = local_path(fields.get("next"))
    key = fields.get("key", "").strip()
    found = await run_in_threadpool(state.auth.caller, key) if key else None
    if found is None:
        problem = "Unknown or revoked API key." if key else "Enter your API key."
        return sign_in_page(request, next_path, problem, status=401)
    cookie, session = keeper.issue(found.user, found.key_id)
    await run_in_threadpool(state.auth.record, found.user, "sign_in", found.user, ui=True)
    response = RedirectResponse(next_path, 303)
    response.set_cookie(COOKIE, cookie, **keeper.cookie_options(keeper.seconds))
    response.delete_cookie(SIGN_IN_COOKIE, path="/ui")
    return response


@router.post("/ui/sign-out")
async def sign_out(request: Request, who: SignedIn) -> Response:
    """End the session (the cookie is deleted) and show the sign-in page."""
    await form(request, who)
    response = RedirectResponse("/ui/sign-in", 303)
    response.delete_cookie(COOKIE, path="/ui")
    return response


@router.get("/ui")
async def ui_root() -> Response:
    return RedirectResponse("/ui/", 307)


fallback = APIRouter(route_class=LimitedRoute)


@fallback.get("/ui/{rest:path}")
async def not_found(who: SignedIn, rest: str) -> HTMLResponse:
    """Any other dashboard path: the sign-in page first, then 404."""
    raise ApiError(404, "no such page")
