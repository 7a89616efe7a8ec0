"""The estimator of a model family, for a task, from its config node."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.compose import TransformedTargetRegressor

from automl.config import build, to_plain
from automl.errors import ConfigError
from automl.models.early_stopping import EarlyStopping

TARGET_TRANSFORMS = (None, "log")


def signed_log(y: np.ndarray) -> np.ndarray:
    """sign(y) * log(1 + |y|): a heavy tail pulled in, any sign kept."""
    return np.sign(y) * np.log1p(np.abs(y))


def signed_exp(z: np.ndarray) -> np.ndarray:
    """The inverse of ``signed_log``."""
    return np.sign(z) * np.expm1(np.abs(z))


def build_model(cfg: Any, task: str, seed: int) -> Any:
    """The family's classifier or regressor, wrapped for early stopping when configured,
    and fitted on a log target (``target_transform: log``, regression) when asked."""
    estimator = build(cfg.regressor if task == "regression" else cfg.classifier)
    if cfg.early_stopping is not None:
        estimator = EarlyStopping(estimator, random_state=seed, **to_plain(cfg.early_stopping))
    transform = cfg.get("target_transform")
    if transform not in TARGET_TRANSFORMS:
        raise ConfigError(
            f"{cfg.name}: target_transform must be one of {TARGET_TRANSFORMS}, got {transform!r}"
        )
    if transform == "log" and task == "regression":
        estimator = TransformedTargetRegressor(
            regressor=estimator, func=signed_log, inverse_func=signed_exp, check_inverse=False
        )
    return estimator


def model_param_prefix(model: Any) -> str:
    """The pipeline parameter prefix that reaches the estimator's own parameters."""
    prefix = "model__"
    if isinstance(model, TransformedTargetRegressor):
        prefix, model = prefix + "regressor__", model.regressor
    return prefix + "estimator__" if isinstance(model, EarlyStopping) else prefix


def model_space(cfg: Any, task: str) -> dict[str, Any]:
    """The family's search space for ``task``: ``space`` plus its classifier/regressor part."""
    role = cfg.regressor_space if task == "regression" else cfg.classifier_space
    return {**to_plain(cfg.space), **to_plain(role)}
