"""Search spaces declared in YAML: sampling them with Optuna, and their grids."""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna


def suggest(trial: optuna.Trial, space: dict[str, dict[str, Any]], prefix: str) -> dict[str, Any]:
    """Sample every parameter of ``space``; keys come back with ``prefix`` prepended."""
    params = {}
    for name, spec in space.items():
        kind = spec.get("type", "float")
        if kind == "categorical":
            value = trial.suggest_categorical(name, spec["choices"])
        else:
            extra = {"log": spec.get("log", False)}
            if spec.get("step") is not None:
                extra["step"] = spec["step"]
            cast = int if kind == "int" else float
            suggest_fn = getattr(trial, f"suggest_{kind}")
            value = suggest_fn(name, cast(spec["low"]), cast(spec["high"]), **extra)
        params[prefix + name] = value
    return params


def contains(spec: dict[str, Any], value: Any) -> bool:
    """Whether ``value`` (a configured default) lies in the parameter's space."""
    if spec.get("type") == "categorical":
        return value in spec["choices"]
    return isinstance(value, int | float) and spec["low"] <= value <= spec["high"]


def grid_values(spec: dict[str, Any], points: int) -> list[Any]:
    """The grid of one parameter: its choices, or ``points`` values spread over its range."""
    if spec.get("type") == "categorical":
        return list(spec["choices"])
    low, high = float(spec["low"]), float(spec["high"])
    values = np.geomspace(low, high, points) if spec.get("log") else np.linspace(low, high, points)
    if spec.get("type") == "int":
        return sorted({int(round(v)) for v in values})
    return [float(v) for v in values]


class GridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler for an ask-and-tell search: the search asks ``is_exhausted``
    when to stop (Optuna's own calls ``study.stop``, which only ``optimize`` allows)."""

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        """Nothing: the search loop stops when the grid is exhausted."""


def grid_sampler(space: dict[str, Any], points: int = 3, seed: int | None = None) -> Any:
    """A grid sampler over the family's space (for ``search=grid``)."""
    grid = {name: grid_values(spec, points) for name, spec in space.items()}
    return GridSampler(grid, seed=seed)
