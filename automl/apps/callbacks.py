"""Hydra callbacks: a summary table at the end of a multirun sweep."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("automl")


class SweepSummary(Callback):
    """Collect every job's ``metrics.json`` into ``summary.csv`` in the sweep directory."""

    def __init__(self, filename: str = "summary.csv") -> None:
        self.filename = filename

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = []
        for metrics_file in sorted(sweep_dir.glob("*/metrics.json")):
            job_dir = metrics_file.parent
            overrides = OmegaConf.load(job_dir / ".hydra" / "overrides.yaml")
            row = {"job": job_dir.name, "overrides": " ".join(overrides)}
            row.update(json.loads(metrics_file.read_text()))
            rows.append(row)
        if not rows:
            log.warning("sweep %s: no job wrote metrics", sweep_dir)
            return
        table = pd.DataFrame(rows)
        table.to_csv(sweep_dir / self.filename, index=False)
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            log.info("sweep summary (%s):\n%s", sweep_dir / self.filename, table.to_string())
