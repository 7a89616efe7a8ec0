"""The serving stores without a server: prediction log (SQLite, Parquet) and the admin CLI."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import yaml
from omegaconf import OmegaConf
from sqlalchemy import Engine, MetaData, select

from automl.apps.admin import main as admin
from automl.services.identity import AuthStore
from automl.serving.prediction_log import PredictionLogger, read_log


@pytest.mark.parametrize("kind", ["SqliteStore", "ParquetStore", "SqlStore"])
def test_logger_writes_in_batches_and_read_log_joins_feedback(tmp_path, kind, request):
    if kind == "SqlStore":  # PostgreSQL
        path = request.getfixturevalue("postgres_url")
        store = {"_target_": "automl.serving.prediction_log.SqlStore", "url": path}
    else:
        path = str(tmp_path / ("log.db" if kind == "SqliteStore" else "log"))
        store = {"_target_": f"automl.serving.prediction_log.{kind}", "path": path}
    cfg = OmegaConf.create(
        {"batch_size": 3, "flush_seconds": 0.1, "queue_size": 100, "store": store}
    )
    logger = PredictionLogger(cfg)
    proba = np.array([[0.9, 0.1], [0.2, 0.8]])
    logger.log(
        "r1", "p.m", 1, [{"a": 1.0, "b": "x"}, {"a": 2.0, "b": None}], ["n", "y"], proba, ["n", "y"]
    )
    logger.log("r2", "p.m", 2, [{"a": 3.0, "b": "z"}], ["n"], proba[:1], ["n", "y"])
    logger.log("r3", "p.other", 1, [{"q": 1}], ["n"], proba[:1], ["n", "y"])
    logger.feedback([("r1", 1, "y", "p.m", 1), ("r2", 0, "n", "p.m", 2), ("r2", 0, "y", "p.m", 2)])
    logger.feedback([("r1", 0, "n", "p.other", 1)])  # another model's label: not p.m's
    logger.close()
    store = logger.store
    assert store.issued("p.m", [("r1", 1), ("r2", 0), ("r3", 0), ("r1", 5)]) == {
        ("r1", 1): 1,
        ("r2", 0): 2,
    }
    assert store.issued("p.other", [("r3", 0), ("r1", 0)]) == {("r3", 0): 1}
    log = read_log(cfg.store, "p.m")
    assert list(log.columns) == [
        "request_id",
        "ts",
        "model",
        "version",
        "a",
        "b",
        "prediction",
        "proba_n",
        "proba_y",
        "label",
    ]
    assert log["request_id"].tolist() == ["r1", "r1", "r2"]
    assert log["a"].tolist() == [1.0, 2.0, 3.0] and log["proba_y"].tolist() == [0.1, 0.8, 0.1]
    assert log["label"].isna().tolist() == [True, False, False]
    assert log["label"].tolist()[1:] == ["y", "y"]  # the latest feedback wins
    assert read_log(path, "p.m", version=2)["request_id"].tolist() == ["r2"]
    assert read_log(path, "p.m", last=1)["request_id"].tolist() == ["r2"]
    assert len(read_log(path, "p.m", since_seconds=60)) == 3
    time.sleep(0.05)
    assert len(read_log(path, "p.m", since_seconds=0.01)) == 0
    assert len(read_log(path, "p.nothing")) == 0


def test_admin_cli_bulk_setup_roles_revoke_and_audit(tmp_path, capsys, store_url):
    db = store_url
    projects = [f"proj{i}" for i in range(10)]
    team = {
        "projects": projects,
        "users": {
            f"user{u}": {
                "roles": {
                    p: ("admin", "editor", "viewer")[(u + i) % 3] for i, p in enumerate(projects)
                }
            }
            for u in range(8)
        },
    }
    (tmp_path / "team.yaml").write_text(yaml.safe_dump(team))
    keys_file = tmp_path / "keys.json"
    assert (
        admin(["--db", db, "setup", str(tmp_path / "team.yaml"), "--keys-out", str(keys_file)]) == 0
    )
    keys = json.loads(keys_file.read_text())
    assert len(keys) == 8 and oct(keys_file.stat().st_mode)[-3:] == "600"
    store = AuthStore(db, ttl=0)
    assert len(store.roles()) == 80
    caller = store.caller(keys["user1"])
    assert caller.roles["proj0"] == "editor" and caller.can("proj0", "viewer")
    assert not caller.can("proj0", "admin") and not caller.can("nope", "viewer")
    assert store.caller(keys["user1"] + "x") is None and store.caller("garbage") is None
    # keys are stored hashed: the secret is in no row of any table
    assert keys["user1"].split("_")[2] not in every_value(store.engine)
    assert admin(["--db", db, "--actor", "ops", "key", "revoke", keys["user1"]]) == 0
    assert store.caller(keys["user1"]) is None
    assert admin(["--db", db, "grant", "ghost", "proj0", "viewer"]) == 1
    assert "no user 'ghost' (add it first: user add ghost)" in capsys.readouterr().err
    assert admin(["--db", db, "user", "add", "ghost"]) == 0
    assert admin(["--db", db, "grant", "ghost", "proj0", "viewer"]) == 0
    assert admin(["--db", db, "revoke-role", "ghost", "proj0"]) == 0
    capsys.readouterr()
    assert admin(["--db", db, "audit", "--last", "4"]) == 0
    actions = [a["action"] for a in json.loads(capsys.readouterr().out)]
    assert actions == ["revoke_role", "grant", "add_user", "revoke_key"]
    assert admin(["--db", db, "key", "list", "--user", "user1"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert listed["revoked_at"] is not None and "key_hash" not in listed


def every_value(engine: Engine) -> str:
    """Every value of every row of every table, as one string."""
    tables = MetaData()
    tables.reflect(engine)
    with engine.connect() as connection:
        rows = [row for t in tables.sorted_tables for row in connection.execute(select(t))]
    return repr(rows)
