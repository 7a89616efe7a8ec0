"""automl: config-first AutoML for tabular data, driven by Hydra."""

from __future__ import annotations

from typing import Any

__all__ = ["AutoMLClassifier", "AutoMLRegressor", "Model", "Trained", "fit", "load_model"]
WHERE = {
    "Model": "automl.bundle.model",
    "load_model": "automl.bundle.model",
    "fit": "automl.api",
    "Trained": "automl.api",
    "AutoMLClassifier": "automl.estimators",
    "AutoMLRegressor": "automl.estimators",
}


def __getattr__(name: str) -> Any:
    """The public names, each imported on first use (the CLI starts fast)."""
    if name in WHERE:
        import importlib

        return getattr(importlib.import_module(WHERE[name]), name)
    raise AttributeError(f"module 'automl' has no attribute {name!r}")
