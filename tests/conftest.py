"""Pytest fixtures: isolated data cache and outputs for every test, and the composed
training config (as in lightning-hydra-template). Plain helpers are in helpers.py."""

from __future__ import annotations

import copy
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator

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


# The server the store tests use: `make postgres` starts Debian's cluster and makes this role.
POSTGRES = os.environ.get(
    "AUTOML_TEST_POSTGRES", "postgresql+psycopg://automl_test:automl_test@127.0.0.1:5432/postgres"
)


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The PostgreSQL server's URL (a role that may create databases); the test is skipped,
    saying why, when no server answers."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    engine = create_engine(POSTGRES)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure to connect means: no server
        where = make_url(POSTGRES).render_as_string(hide_password=True)
        pytest.skip(
            f"no PostgreSQL server at {where} ({type(exc).__name__}): run `make postgres` "
            "as root, or set AUTOML_TEST_POSTGRES to a URL whose role may create databases"
        )
    finally:
        engine.dispose()
    return POSTGRES


@pytest.fixture
def new_postgres_database(postgres_server: str) -> Iterator[Callable[[], str]]:
    """Makes fresh, empty databases on the PostgreSQL server (the URL of each), all dropped
    after the test."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    names: list[str] = []
    admin = create_engine(postgres_server, isolation_level="AUTOCOMMIT")

    def new() -> str:
        name = f"automl_test_{uuid.uuid4().hex[:12]}"
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        names.append(name)
        return make_url(postgres_server).set(database=name).render_as_string(hide_password=False)

    try:
        yield new
    finally:
        with admin.connect() as connection:
            for name in names:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def postgres_url(new_postgres_database: Callable[[], str]) -> str:
    """A fresh, empty database on the PostgreSQL server for one test, dropped afterwards."""
    return new_postgres_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    """A database URL for a store test: the test runs once on SQLite, once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("postgres_url")
