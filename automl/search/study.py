"""The Optuna study behind a search: its sampler, and its storage (kept, shared, resumed)."""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy

from automl.config import build
from automl.errors import AutomlError


def open_storage(storage: Any) -> Any:
    """Optuna storage from config: a database URL, a journal file path, or a storage node."""
    if storage is None:
        return None
    if "://" in str(storage):
        return database_storage(str(storage))
    if isinstance(storage, str):
        path = Path(storage).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    return build(storage)


def database_storage(url: str, attempts: int = 5) -> optuna.storages.RDBStorage:
    """Optuna's storage in the database at ``url``. Processes that start at once on a new
    database race to make its tables; the loser waits and opens what the winner made."""
    for attempt in range(1, attempts):
        try:
            return optuna.storages.RDBStorage(url)
        except sqlalchemy.exc.DBAPIError:
            time.sleep(0.5 * attempt)
    return optuna.storages.RDBStorage(url)  # the last attempt raises what goes wrong


def open_study(cfg: Any, sampler: optuna.samplers.BaseSampler) -> optuna.Study:
    """A new study, or the one kept in ``search.storage`` under ``study_name`` (resumed)."""
    return optuna.create_study(
        study_name=cfg.study_name,
        storage=open_storage(cfg.storage),
        sampler=sampler,
        direction="maximize",
        load_if_exists=cfg.storage is not None,
    )


def build_sampler(cfg: Any, spaces: dict[str, dict[str, Any]]) -> optuna.samplers.BaseSampler:
    """The configured sampler. A sampler that needs the space up front (``search=grid``:
    a partial) gets it, which takes a single family: ``spaces`` has one per family."""
    sampler = build(cfg.sampler)
    if not isinstance(sampler, functools.partial):
        return sampler
    if len(spaces) != 1:
        raise AutomlError(
            f"search.sampler {cfg.sampler._target_} needs one fixed space; model=auto "
            f"searches several families ({', '.join(spaces)}): use search=tpe or search=random"
        )
    [space] = spaces.values()
    return sampler(space)
