"""The Optuna study behind a search: its sampler, and its storage (kept, shared, resumed)."""

from __future__ import annotations

import functools
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy

from automl.config import build
from automl.errors import AutomlError


def open_storage(storage: Any, heartbeat: int | None = None) -> Any:
    """Optuna storage from config: a database URL, a journal file path, or a storage node.
    A database's trials beat every ``heartbeat`` seconds: one whose process stopped
    beating for twice that is marked failed by the next process that asks for a trial."""
    if storage is None:
        return None
    if "://" in str(storage):
        return database_storage(str(storage), heartbeat)
    if isinstance(storage, str):
        path = Path(storage).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    return build(storage)


def database_storage(
    url: str, heartbeat: int | None = None, attempts: int = 5
) -> optuna.storages.RDBStorage:
    """Optuna's storage in the database at ``url``. Processes that start at once on a new
    database race to make its tables; the loser waits and opens what the winner made."""
    beats = {} if heartbeat is None else {"heartbeat_interval": heartbeat}

    def storage() -> optuna.storages.RDBStorage:
        with warnings.catch_warnings():  # heartbeats are marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, **beats)

    for attempt in range(1, attempts):
        try:
            return storage()
        except sqlalchemy.exc.DBAPIError:
            time.sleep(0.5 * attempt)
    return storage()  # the last attempt raises what goes wrong


class Heartbeat:
    """Records a heartbeat of each running trial of ``running()`` (what Optuna's own
    ``optimize`` does for its trials), for a study whose storage has heartbeats."""

    def __init__(self, study: optuna.Study, running: Callable[[], list[optuna.Trial]]) -> None:
        storage = study._storage  # Optuna keeps it private; optimize() uses it the same way
        self.interval = getattr(storage, "get_heartbeat_interval", lambda: None)()
        self.storage, self.running = storage, running
        self.stopped = threading.Event()
        if self.interval is not None:
            threading.Thread(target=self.beat, name="trial-heartbeat", daemon=True).start()

    def started(self, trial: optuna.Trial) -> None:
        """A trial's first beat, as it starts (a trial that never beat is never stale)."""
        if self.interval is not None:
            self.storage.record_heartbeat(trial._trial_id)

    def beat(self) -> None:
        while not self.stopped.wait(self.interval):
            for trial in self.running():
                self.storage.record_heartbeat(trial._trial_id)

    def stop(self) -> None:
        self.stopped.set()


def open_study(cfg: Any, sampler: optuna.samplers.BaseSampler) -> optuna.Study:
    """A new study, or the one kept in ``search.storage`` under ``study_name`` (resumed)."""
    return optuna.create_study(
        study_name=cfg.study_name,
        storage=open_storage(cfg.storage, cfg.get("heartbeat")),
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
