"""The dashboard: server-rendered pages under ``/ui/`` of the serving app, over the same
services, users, keys and roles as the API (see ``docs/dashboard.md``).

One module per section (``overview``, ``runs``, ``models``, ``monitoring``, ``serving``,
``data``, ``admin``) plus ``auth`` (sign-in and sign-out); ``web`` holds what they share.
Static files (CSS, the page script, vendored Chart.js and htmx) are served from
``static/``: nothing is fetched from another site.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from automl.serving.ui import admin, auth, data, models, monitoring, overview, runs, serving
from automl.serving.ui.web import Dashboard, SignInNeeded, to_sign_in

ROUTERS = (
    auth.router,
    overview.router,
    runs.router,
    models.router,
    monitoring.router,
    serving.router,
    data.router,
    admin.router,
    auth.fallback,  # last: any other /ui/ path
)


def install(app: FastAPI, cfg: Any) -> None:
    """Add the dashboard's routes and static files to ``app`` (``ui.enabled``)."""
    app.state.dashboard = Dashboard.build(cfg)
    app.add_exception_handler(SignInNeeded, to_sign_in)
    app.mount(
        "/ui/static", StaticFiles(packages=[("automl.serving.ui", "static")]), name="ui-static"
    )
    for router in ROUTERS:
        app.include_router(router, include_in_schema=False)
