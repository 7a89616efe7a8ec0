"""Hyper-parameter search with Optuna over the spaces declared in YAML: one loop for every
model config (a single family is a portfolio of one)."""

from automl.search.fit import Fitted, fit_search, start_pool
from automl.search.space import grid_sampler, suggest

__all__ = ["Fitted", "fit_search", "grid_sampler", "start_pool", "suggest"]
