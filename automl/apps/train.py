"""The training app (``python -m automl``): composed from ``conf/train.yaml``."""

from __future__ import annotations

from typing import Any

import hydra
from omegaconf import DictConfig

from automl.apps.common import report_user_errors, run_dir
from automl.config import register_schemas

register_schemas()


@hydra.main(config_path="pkg://automl.conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> Any:
    """Train, evaluate and save a model as the composed config says."""
    from automl.services.training import train

    return report_user_errors(train, cfg, run_dir())


if __name__ == "__main__":
    main()
