"""The ingest app (``python -m automl.ingest``): a data file in, a validated data set out."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from automl.apps.common import report_user_errors
from automl.config import register_schemas

register_schemas()


@hydra.main(config_path="pkg://automl.conf.apps", config_name="ingest", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Ingest ``cfg.input`` as the data set ``cfg.name``."""
    from automl.services.ingest import ingest

    report_user_errors(ingest, cfg)


if __name__ == "__main__":
    main()
