"""Hyper-parameter search with Optuna over the spaces declared in YAML."""

from automl.search.space import grid_sampler, suggest
from automl.search.study import SearchResult, run_search

__all__ = ["SearchResult", "grid_sampler", "run_search", "suggest"]
