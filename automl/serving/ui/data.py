"""Dashboard section: data (being written)."""

from __future__ import annotations

from fastapi import APIRouter

from automl.serving.deps import LimitedRoute

router = APIRouter(route_class=LimitedRoute)
