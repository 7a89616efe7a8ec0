"""The predict app (``python -m automl.predict``): score a file with a trained model."""

from __future__ import annotations

from omegaconf import DictConfig

from automl.apps.common import APPS, hydra_app


@hydra_app(APPS, "predict")
def main(cfg: DictConfig) -> None:
    """Score ``cfg.input`` with ``cfg.model`` and write ``cfg.output``."""
    from automl.services.scoring import predict_file

    predict_file(cfg)


if __name__ == "__main__":
    main()
