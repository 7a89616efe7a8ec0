"""The feature steps from the ``features`` config node: the blocks (one ColumnTransformer:
each block's steps on the columns it selects), then the optional steps across all
features, in order ``interactions``, ``selection``, ``decomposition``.

Each step is fitted with the model inside every CV fold (the whole pipeline is), so the
steps that look at the target never see the rows they are scored on.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline

from automl.config import build, to_plain
from automl.errors import ConfigError

ACROSS = ("interactions", "selection", "decomposition")  # steps after the blocks, in order
ENABLED = "enabled"  # a space key of an across step: search whether the step is on


def build_features(cfg: Any, n_jobs: int | None = None) -> ColumnTransformer:
    """One ColumnTransformer: each block's steps applied to the columns it selects.

    ``columns`` is a list of names or a selector node (e.g. ``make_column_selector``).
    Columns that no block selects are dropped.
    """
    blocks = []
    for name, block in cfg.blocks.items():
        columns = build(block.columns)
        steps = [(f"{name}_{i}", build(step)) for i, step in enumerate(block.steps)]
        transformer = Pipeline(steps) if steps else "passthrough"
        blocks.append((name, transformer, columns))
    transformer = ColumnTransformer(
        blocks, remainder="drop", verbose_feature_names_out=False, n_jobs=n_jobs
    )
    if cfg.output == "pandas":
        transformer.set_output(transform="pandas")
    return transformer


def across_steps(cfg: Any) -> list[str]:
    """The across-all-features steps the config turns on, in pipeline order."""
    chosen = [kind for kind in ACROSS if (cfg.get(kind) or {}).get("step") is not None]
    if chosen and cfg.output == "pandas":
        raise ConfigError(
            f"features.{chosen[0]} works on numeric features, but features={cfg.name} gives "
            "the model pandas categoricals: choose a feature set that encodes them "
            "(default, minimal, robust, target_encoding)"
        )
    return chosen


def feature_steps(
    cfg: Any, n_jobs: int | None = None, task: str | None = None
) -> list[tuple[str, Any]]:
    """The pipeline steps before the model: ``("features", blocks)``, then each across
    step that is on (wrapped in :class:`OptionalStep`, so the search can turn it off).

    With ``task``, a step that says it cannot work on that target (its
    ``unsuitable_for(task)``) is refused here, before any trial runs."""
    steps: list[tuple[str, Any]] = [("features", build_features(cfg, n_jobs))]
    for kind in across_steps(cfg):
        step = build(cfg[kind].step)
        check = getattr(step, "unsuitable_for", None)
        reason = check(task) if task and check else None
        if reason:
            raise ConfigError(f"features.{kind} (features={cfg.name}): {reason}")
        steps.append((kind, OptionalStep(step)))
    return steps


def feature_space(cfg: Any) -> dict[str, Any]:
    """The search space of the feature steps, as pipeline parameters: ``features.space``
    (the blocks' parameters) and each across step's ``space`` (``enabled``: whether it
    is on; any other key: a parameter of the step)."""
    space = {"features__" + k: v for k, v in to_plain(cfg.space).items()}
    for kind in across_steps(cfg):
        for key, spec in to_plain(cfg[kind].space).items():
            space[f"{kind}__{key}" if key == ENABLED else f"{kind}__step__{key}"] = spec
    return space


class OptionalStep(TransformerMixin, BaseEstimator):
    """A step that can be switched off (``enabled=False``: its input passes through)."""

    def __init__(self, step: Any, enabled: bool = True) -> None:
        self.step = step
        self.enabled = enabled

    def fit(self, X, y=None):
        self.step_ = clone(self.step).fit(X, y) if self.enabled else None
        self.n_features_in_ = X.shape[1]
        if hasattr(X, "columns"):
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        return self

    def transform(self, X):
        return X if self.step_ is None else self.step_.transform(X)

    def get_feature_names_out(self, input_features=None):
        if self.step_ is not None:
            return self.step_.get_feature_names_out(input_features)
        if input_features is None:
            default = [f"x{i}" for i in range(self.n_features_in_)]
            input_features = getattr(self, "feature_names_in_", default)
        return np.asarray(input_features, dtype=object)
