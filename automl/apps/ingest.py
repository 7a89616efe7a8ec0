"""The ingest app (``python -m automl.ingest``): a data file in, a validated data set out."""

from __future__ import annotations

from omegaconf import DictConfig

from automl.apps.common import APPS, hydra_app


@hydra_app(APPS, "ingest")
def main(cfg: DictConfig) -> None:
    """Ingest ``cfg.input`` as the data set ``cfg.name``."""
    from automl.services.ingest import ingest

    ingest(cfg)


if __name__ == "__main__":
    main()
