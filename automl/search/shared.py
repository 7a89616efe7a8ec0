"""Out-of-fold predictions shared through a shared study (``search.storage``).

Several processes (or machines) searching one study each run their own trials; for the
final ensemble to use all of them, every finished trial's out-of-fold predictions go to an
Optuna artifact store (``search.artifacts``: a folder every process reaches, or an artifact
store node such as ``optuna.artifacts.Boto3ArtifactStore``), with a fingerprint of the
folds and targets they belong to. At the end a process adds the best trials of the others
whose fingerprint is its own (same data, same folds) to its ensemble candidates; their
pipelines are rebuilt from the stored parameters and refit like its own.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from automl.config import build
from automl.search.pool import TrialData, TrialOutcome
from automl.search.portfolio import Kept

ATTRIBUTE = "oof"  # the trial attribute that says where its predictions are


def fingerprint(data: TrialData) -> str:
    """What out-of-fold predictions can be pooled with: the target and every fold."""
    digest = hashlib.sha256(np.ascontiguousarray(data.y).tobytes())
    digest.update(data.scoring.encode())
    for train, valid in data.folds:
        digest.update(np.asarray(train, dtype=np.int64).tobytes())
        digest.update(np.asarray(valid, dtype=np.int64).tobytes())
    return digest.hexdigest()[:32]


class SharedPredictions:
    """Uploads this process's trials' out-of-fold predictions; fetches the others' best."""

    def __init__(self, store: Any, data: TrialData) -> None:
        self.store = store
        self.fingerprint = fingerprint(data)

    @classmethod
    def of(cls, cfg: Any, data: TrialData) -> SharedPredictions | None:
        """For a search config with a shared study and ``artifacts``; None otherwise."""
        location = cfg.get("artifacts")
        if cfg.storage is None or location is None:
            return None
        if isinstance(location, str | Path):
            Path(location).expanduser().mkdir(parents=True, exist_ok=True)
            store = optuna.artifacts.FileSystemArtifactStore(str(Path(location).expanduser()))
        else:
            store = build(location)
        return cls(store, data)

    def upload(self, trial: optuna.Trial, kept: Kept) -> None:
        """Store a finished trial's predictions (before it is told: its attributes close)."""
        with tempfile.TemporaryDirectory(prefix="automl-oof-") as tmp:
            path = Path(tmp) / f"trial-{trial.number}.npy"
            np.save(path, kept.outcome.oof, allow_pickle=False)
            artifact = optuna.artifacts.upload_artifact(
                artifact_store=self.store, file_path=str(path), study_or_trial=trial
            )
        trial.set_user_attr(
            ATTRIBUTE,
            {
                "artifact": artifact,
                "fingerprint": self.fingerprint,
                "values": kept.values,
                "scores": [float(s) for s in kept.outcome.scores],
                "seconds": kept.outcome.seconds,
                "refit_seconds": kept.outcome.refit_seconds,
            },
        )

    def others(self, study: optuna.Study, mine: set[int], keep: int) -> list[Kept]:
        """The ``keep`` best finished trials of other processes on the same folds."""
        shared = [
            t
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.number not in mine
            and t.user_attrs.get(ATTRIBUTE, {}).get("fingerprint") == self.fingerprint
        ]
        shared.sort(key=lambda t: t.value, reverse=True)
        return [self.download(t) for t in shared[:keep]]

    def download(self, trial: optuna.trial.FrozenTrial) -> Kept:
        stored = trial.user_attrs[ATTRIBUTE]
        with tempfile.TemporaryDirectory(prefix="automl-oof-") as tmp:
            path = Path(tmp) / "oof.npy"
            optuna.artifacts.download_artifact(
                artifact_store=self.store, file_path=str(path), artifact_id=stored["artifact"]
            )
            oof = np.load(path, allow_pickle=False)
        outcome = TrialOutcome(
            float(trial.value), stored["scores"], oof, stored["seconds"], stored["refit_seconds"]
        )
        return Kept(trial.number, trial.params["family"], stored["values"], outcome)
