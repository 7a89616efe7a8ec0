"""Metrics on held-out data, and the plots of a run."""

from automl.evaluation.metrics import evaluate
from automl.evaluation.plots import save_plots

__all__ = ["evaluate", "save_plots"]
