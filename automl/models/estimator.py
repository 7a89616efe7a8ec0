"""The estimator of a model family, for a task, from its config node."""

from __future__ import annotations

from typing import Any

from automl.config import build, to_plain
from automl.models.early_stopping import EarlyStopping


def build_model(cfg: Any, task: str, seed: int) -> Any:
    """The family's classifier or regressor, wrapped for early stopping when configured."""
    estimator = build(cfg.regressor if task == "regression" else cfg.classifier)
    if cfg.early_stopping is None:
        return estimator
    return EarlyStopping(estimator, random_state=seed, **to_plain(cfg.early_stopping))


def model_param_prefix(model: Any) -> str:
    """The pipeline parameter prefix that reaches the estimator's own parameters."""
    return "model__estimator__" if isinstance(model, EarlyStopping) else "model__"


def model_space(cfg: Any, task: str) -> dict[str, Any]:
    """The family's search space for ``task``: ``space`` plus its classifier/regressor part."""
    role = cfg.regressor_space if task == "regression" else cfg.classifier_space
    return {**to_plain(cfg.space), **to_plain(role)}
