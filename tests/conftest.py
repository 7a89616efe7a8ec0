"""Pytest fixtures: isolated data cache and outputs for every test, and the composed
training config (as in lightning-hydra-template). Plain helpers are in helpers.py."""

from __future__ import annotations

import copy
import os
import tempfile
from collections.abc import Callable

import pytest
from helpers import FAST, SHARED_DATA, compose_train
from omegaconf import DictConfig

# Data files come from ../shared/data; downloads never touch the user's cache.
os.environ["AUTOML_DATA_DIR"] = str(SHARED_DATA)
os.environ["AUTOML_CACHE_DIR"] = tempfile.mkdtemp(prefix="automl-test-cache-")


@pytest.fixture(autouse=True)
def _isolated_outputs(tmp_path_factory, monkeypatch):
    """Each test writes its runs under a fresh output folder."""
    monkeypatch.setenv("AUTOML_OUTPUT_DIR", str(tmp_path_factory.mktemp("outputs")))


@pytest.fixture(scope="session")
def cfg_train_global() -> DictConfig:
    """The default training config with the small-run settings, composed once."""
    return compose_train(FAST)


@pytest.fixture
def cfg_train(cfg_train_global: DictConfig) -> DictConfig:
    """A copy of it for one test (change it freely)."""
    return copy.deepcopy(cfg_train_global)


@pytest.fixture
def train_config() -> Callable[..., DictConfig]:
    """Compose the training config with overrides, as ``python -m automl <overrides>``."""
    return compose_train


@pytest.fixture(scope="session")
def dashboard_world(tmp_path_factory) -> dict:
    """The dashboard tests' world (tests/dashboard_world.py), built once per session."""
    from dashboard_world import build_world

    return build_world(tmp_path_factory.mktemp("dashboard-world"))
