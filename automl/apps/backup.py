"""The backup app (``python -m automl.backup``): one archive of every shared store, taken
while training and serving run; ``restore=ARCHIVE`` puts it back into empty locations.

The stores are found through the same config keys training and serving use (``registry``,
``auth.url``, ``prediction_log.store``, ``tracking``); :mod:`automl.services.backup` does
the work.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from automl.apps.common import APPS, hydra_app
from automl.errors import ConfigError
from automl.redact import redact_text
from automl.services.backup import Part, PgTools, backup, database, folder, restore, skipped

log = logging.getLogger("automl.backup")


def registry_parts(cfg: DictConfig) -> list[Part]:
    """The registry's database (which records its bundles' paths) and bundle store."""
    from automl.bundle.registry import database_url, relocate

    url = database_url(cfg.registry.uri)
    return [
        database("registry", "database", "registry.uri", url, relocate=relocate, holds="bundles"),
        folder("registry", "bundles", "registry.store", cfg.registry.store),
    ]


def auth_parts(cfg: DictConfig) -> list[Part]:
    """The identity database."""
    return [database("auth", "database", "auth.url", cfg.auth.url)]


def prediction_log_parts(cfg: DictConfig) -> list[Part]:
    """The prediction log: a database (``url``) or a folder (``path``) of its store."""
    from automl.serving.prediction_log import open_store

    store = open_store(cfg.prediction_log.store)
    if getattr(store, "url", None):
        return [database("prediction_log", "log", "prediction_log.store", store.url)]
    if getattr(store, "path", None) is not None:
        return [folder("prediction_log", "log", "prediction_log.store", store.path)]
    raise ConfigError(
        f"prediction_log.store: a {type(store).__name__} has neither a url nor a path to back up"
    )


def tracking_parts(cfg: DictConfig) -> list[Part]:
    """The MLflow store (an SQLite or PostgreSQL database) and its local artifact folder;
    a server, or no tracking, is noted and skipped."""
    from automl.tracking import local_artifacts, relocate_artifacts

    uri = OmegaConf.select(cfg, "tracking.uri")
    if uri is None:
        return [skipped("tracking", "database", "tracking", "tracking=none (nothing tracked)")]
    uri = str(uri)
    if not uri.startswith(("sqlite:", "postgresql:", "postgresql+")):
        note = (
            f"tracking.uri '{redact_text(uri)}' is an MLflow server or a store automl does not "
            "snapshot: back it up where it runs"
        )
        return [skipped("tracking", "database", "tracking.uri", note)]
    artifacts = local_artifacts(uri, OmegaConf.select(cfg, "tracking.artifact_location"))
    parts = [
        database(
            "tracking",
            "database",
            "tracking.uri",
            uri,
            relocate=relocate_artifacts,
            holds="artifacts",
        )
    ]
    key = "tracking.artifact_location"
    if artifacts is None:
        note = "the artifacts are kept by a server or remote storage: back them up there"
        return [*parts, skipped("tracking", "artifacts", key, note)]
    return [*parts, folder("tracking", "artifacts", key, artifacts)]


STORES: dict[str, Callable[[DictConfig], list[Part]]] = {
    "registry": registry_parts,
    "auth": auth_parts,
    "prediction_log": prediction_log_parts,
    "tracking": tracking_parts,
}


def parts(cfg: DictConfig) -> list[Part]:
    """The parts of the stores ``cfg.stores`` names, where ``cfg`` places them."""
    unknown = [name for name in cfg.stores if name not in STORES]
    if unknown or not cfg.stores:
        raise ConfigError(f"stores={list(cfg.stores)}: choose among {list(STORES)}")
    return [part for name in dict.fromkeys(cfg.stores) for part in STORES[name](cfg)]


@hydra_app(APPS, "backup")
def main(cfg: DictConfig) -> None:
    """Back up the chosen stores into ``to``, or restore ``restore`` into where they are."""
    tools = PgTools(tuple(cfg.pg_bin))
    if cfg.restore:
        for line in restore(Path(cfg.restore), parts(cfg), tools):
            log.info("restored %s", line)
        log.info("restore of %s done", cfg.restore)
        return
    archive, manifest = backup(parts(cfg), Path(cfg.to), tools)
    files = [f for store in manifest["stores"].values() for p in store.values() for f in p["files"]]
    log.info("backup written: %s (%d files)", archive, len(set(files)))


if __name__ == "__main__":
    main()
