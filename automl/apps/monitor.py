"""``python -m automl.monitor model=<ref> input=<file>``: check a file for drift against the
model's reference profile; the exit status says ok / warning / drift (1: an error)."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from automl.apps.common import report_user_errors, run_dir
from automl.config import register_schemas

register_schemas()


@hydra.main(config_path="pkg://automl.conf.apps", config_name="monitor", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Write the report of ``cfg.input`` against ``cfg.model`` and exit with its code."""
    from automl.services.monitoring import monitor_file

    report = report_user_errors(monitor_file, cfg, run_dir())
    sys.exit(report["exit_code"])


if __name__ == "__main__":
    main()
