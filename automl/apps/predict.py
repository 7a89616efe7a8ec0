"""The predict app (``python -m automl.predict``): score a file with a trained model bundle."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from automl.apps.common import report_user_errors
from automl.config import register_schemas

register_schemas()


@hydra.main(config_path="pkg://automl.conf.apps", config_name="predict", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Score ``cfg.input`` with ``cfg.model`` and write ``cfg.output``."""
    from automl.services.scoring import predict_file

    report_user_errors(predict_file, cfg)


if __name__ == "__main__":
    main()
