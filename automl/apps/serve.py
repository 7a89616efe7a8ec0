"""The serve app (``python -m automl.serve``): the REST API over the model registry."""

from __future__ import annotations

import json
import logging
import os
import secrets

import yaml
from omegaconf import DictConfig, OmegaConf

from automl.apps.common import APPS, hydra_app, run_dir
from automl.atomic import write_text
from automl.errors import ConfigError
from automl.monitoring.drift import with_overrides
from automl.redact import redact

log = logging.getLogger("automl.serve")


def check(cfg: DictConfig) -> None:
    """Settings that would fail later, named now."""
    for key in (
        "workers",
        "cache.size",
        "fast_path.max_rows",
        "limits.max_body_bytes",
        "limits.max_batch_rows",
        "limits.max_concurrent_requests",
        "prediction_log.batch_size",
    ):
        value = OmegaConf.select(cfg, key)
        if value < 1:
            raise ConfigError(f"{key} must be at least 1, got {value}")
    bound = cfg.cache.max_memory_mb
    if bound is not None and bound <= 0:
        raise ConfigError(f"cache.max_memory_mb must be positive (or null: no bound), got {bound}")
    if cfg.limits.request_timeout <= 0:
        raise ConfigError(
            f"limits.request_timeout must be positive, got {cfg.limits.request_timeout}"
        )


def serve(cfg: DictConfig) -> None:
    """Start uvicorn on the resolved config (handed to its workers in the environment,
    which only the server's own processes read), with a copy for people beside the run's
    log (``serve_config.yaml``, secrets masked)."""
    import uvicorn

    from automl.serving.app import CONFIG_ENV
    from automl.serving.metrics import MULTIPROCESS

    check(cfg)
    folder = run_dir()
    path = folder / "serve_config.yaml"
    resolved = OmegaConf.to_container(cfg, resolve=True)
    if resolved["ui"]["enabled"] and not resolved["ui"]["session_secret"]:
        # one secret for every worker (each would make its own and refuse the others' cookies)
        resolved["ui"]["session_secret"] = secrets.token_urlsafe(32)
    write_text(path, yaml.safe_dump(redact(resolved), sort_keys=False))
    os.environ[CONFIG_ENV] = json.dumps(resolved)
    if cfg.workers > 1:
        metrics_dir = folder / "prometheus"
        metrics_dir.mkdir(parents=True, exist_ok=True)
        os.environ[MULTIPROCESS] = str(metrics_dir)
    log.info("serving on http://%s:%d (docs: /docs), config %s", cfg.host, cfg.port, path)
    uvicorn.run(
        "automl.serving.app:from_env",
        factory=True,
        host=cfg.host,
        port=cfg.port,
        workers=cfg.workers,
        log_level=cfg.log_level,
        access_log=cfg.access_log,
        log_config=None,
    )


@hydra_app(APPS, "serve")
def main(cfg: DictConfig) -> None:
    """Check the config and serve until stopped."""
    cfg.monitoring = with_overrides(cfg.monitoring, [])
    serve(cfg)


if __name__ == "__main__":
    main()
