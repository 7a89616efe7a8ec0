"""The training app (``python -m automl``): composed from ``conf/train.yaml``."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from automl.apps.common import hydra_app, run_dir


@hydra_app("pkg://automl.conf", "train")
def main(cfg: DictConfig) -> Any:
    """Train, evaluate and save a model as the composed config says."""
    from automl.services.training import train

    return train(cfg, run_dir())


if __name__ == "__main__":
    main()
