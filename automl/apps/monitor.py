"""The monitor app (``python -m automl.monitor model=<ref> input=<file>``): check a file
for drift against the model's reference profile; the exit status says ok / warning /
drift (1: an error)."""

from __future__ import annotations

import sys

from omegaconf import DictConfig

from automl.apps.common import APPS, hydra_app, run_dir
from automl.monitoring.drift import with_overrides


@hydra_app(APPS, "monitor")
def main(cfg: DictConfig) -> None:
    """Write the report of ``cfg.input`` against ``cfg.model`` and exit with its code."""
    from automl.services.monitoring import monitor_file

    cfg.monitoring = with_overrides(cfg.monitoring, list(cfg.set))
    report = monitor_file(cfg, run_dir())
    sys.exit(report["exit_code"])


if __name__ == "__main__":
    main()
