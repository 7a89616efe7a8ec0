"""Build the feature ColumnTransformer from the ``features`` config node."""

from __future__ import annotations

from typing import Any

from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline

from automl.config import build


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
