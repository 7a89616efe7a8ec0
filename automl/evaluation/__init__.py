"""Metrics on held-out data, the plots of a run, and the model card of a bundle."""

from automl.evaluation.card import build_card, card_files, check_slices
from automl.evaluation.metrics import evaluate, record, score
from automl.evaluation.plots import save_plots

__all__ = ["build_card", "card_files", "check_slices", "evaluate", "record", "save_plots", "score"]
