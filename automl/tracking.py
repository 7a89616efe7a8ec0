"""Experiment tracking: what a training run reports, and where."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig


class NoTracking:
    """Tracking switched off (``tracking=none``)."""

    def log_run(
        self,
        cfg: DictConfig,
        run_dir: Path,
        metrics: dict[str, float],
        trials: pd.DataFrame,
        tags: dict[str, Any],
    ) -> str | None:
        """Record a finished training run; returns the tracker's run id (None here)."""
        return None
