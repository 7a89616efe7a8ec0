"""Score a file: read it, check it against the model's contract, predict, write."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from automl.bundle.model import load_model
from automl.io import read_file, write_file

log = logging.getLogger(__name__)


def predict_file(cfg: Any) -> Path:
    """Score ``cfg.input`` with the model at ``cfg.model``; returns the output path."""
    model = load_model(cfg.model)
    frame = read_file(cfg.input, cfg.formats)
    scored = model.score(frame)
    if cfg.keep_columns:
        scored = pd.concat([frame.drop(columns=scored.columns, errors="ignore"), scored], axis=1)
    path = write_file(scored, cfg.output, cfg.formats)
    log.info("scored %d rows from %s with %s -> %s", len(scored), cfg.input, cfg.model, path)
    return path
