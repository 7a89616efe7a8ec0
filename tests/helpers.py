"""Test helpers shared by the test modules: the real data folder, the shipped names,
composing the training config, running a command for real. (Fixtures are in conftest.py.)"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml
from hydra import compose, initialize_config_module
from omegaconf import DictConfig, OmegaConf

from automl.config import register_schemas

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
FILE_DATASETS = ("adult", "abalone", "winequality_red", "horse_colic")
EMBEDDED_DATASETS = ("iris", "wine", "breast_cancer", "digits", "diabetes")
MODELS = ("lgbm", "xgb", "rf", "extra_trees", "linear", "hist_gb", "lgbm_default")
# Small runs; tracking is tested on its own (tests/test_tracking.py).
FAST = [
    "search.n_trials=1",
    "evaluation.cv_folds=2",
    "evaluation.plots=false",
    "tracking=none",
    "evaluation.bootstrap=20",
    "evaluation.importance_rows=300",
]

# adult's columns, as the shipped data set declares them (the files have no header)
ADULT_COLUMNS = list(OmegaConf.load(ROOT / "conf" / "dataset" / "adult.yaml").source.reader.names)

needs_shared_data = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason=f"real data folder {SHARED_DATA} is absent"
)


def adult_test_rows(labels: bool = False) -> pd.DataFrame:
    """The official adult test file as a user has it (label without its trailing ".",
    or dropped)."""
    frame = pd.read_csv(
        SHARED_DATA / "adult-test.csv",
        header=None,
        names=ADULT_COLUMNS,
        skipinitialspace=True,
        comment="|",
    )
    if labels:
        return frame.assign(income=frame["income"].str.removesuffix("."))
    return frame.drop(columns="income")


def compose_train(overrides: list[str] | None = None, config_name: str = "train") -> DictConfig:
    """The composed training config, as `python -m automl <overrides>` would see it."""
    register_schemas()
    with initialize_config_module("automl.conf", version_base="1.3"):
        return compose(config_name, overrides=overrides or [])


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run ``python -m <args>`` in a subprocess, capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ),
    )


def run_dirs() -> list[Path]:
    """Run directories created so far under the current AUTOML_OUTPUT_DIR."""
    return sorted(Path(os.environ["AUTOML_OUTPUT_DIR"]).glob("runs/*/*"))


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve_process(
    overrides: list[str], log_path: Path, ready: str = "/health/ready"
) -> Iterator[tuple[str, subprocess.Popen]]:
    """(URL, process) of a real ``python -m automl.serve <overrides>`` on a free port of
    127.0.0.1, once ``ready`` answers 200; its output goes to ``log_path``; stopped (and
    its shutdown waited for) on exit."""
    port = free_port()
    command = [sys.executable, "-m", "automl.serve", f"port={port}", *overrides]
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 90
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"server exited: {log_path.read_text()}")
                try:
                    if httpx.get(f"{url}{ready}", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"server not ready: {log_path.read_text()}")
                time.sleep(0.2)
            yield url, proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def set_up_team(root: Path, team: dict, db: str | None = None) -> dict:
    """Users, projects and roles of ``team`` (the ``setup`` YAML) in a new auth database
    (``db``, or an SQLite file under ``root``), through the admin CLI:
    {"db": URL, "admin": command, "keys": {user: key}}."""
    (root / "team.yaml").write_text(yaml.safe_dump(team))
    db = db or f"sqlite:///{root}/serving/auth.db"
    admin = [sys.executable, "-m", "automl.serving.admin", "--db", db, "--actor", "tests"]
    done = subprocess.run(
        [*admin, "setup", str(root / "team.yaml"), "--keys-out", str(root / "keys.json")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return {"db": db, "admin": admin, "keys": json.loads((root / "keys.json").read_text())}
