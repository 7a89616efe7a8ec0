"""automl: config-first AutoML for tabular data, driven by Hydra."""

from __future__ import annotations

from typing import Any

__all__ = ["Model", "load_model"]


def __getattr__(name: str) -> Any:
    """``automl.load_model`` and ``automl.Model``, imported on first use (fast CLI start)."""
    if name in __all__:
        from automl.bundle import model

        return getattr(model, name)
    raise AttributeError(f"module 'automl' has no attribute {name!r}")
