"""Secrets never written in clear (issue 12, finding 8): a password planted in the
URL-like settings of real commands (the study storage, the auth database, an ingest
database) is found in no file they write and in none of their output.

(MLflow's SQLite store does not keep SQLite's ``uri=true``, so a password cannot ride on a
working local tracking URI: ``tracking.uri`` is masked by the same config and log
redaction these tests check, and by ``test_redact_text``.)"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import httpx
import pytest
from helpers import run_cli, serve_process
from sklearn.datasets import load_wine

from automl.redact import MASK, redact, redact_text

SECRET = "PlantedS3cret"


def store_url(path: Path) -> str:
    """A working SQLite URL that carries a password (SQLite ignores the parameter)."""
    return f"sqlite:///file:{path}?mode=rwc&uri=true&password={SECRET}"


def leaks(folder: Path) -> list[str]:
    """Files under ``folder`` whose bytes hold the secret."""
    return [
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and SECRET.encode() in p.read_bytes()
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql+psycopg://me:p%40ss@db:5432/x", "postgresql+psycopg://me:***@db:5432/x"),
        ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
        ("https://u:t@h/x.csv?sig=abc&se=1", "https://u:***@h/x.csv?sig=***&se=1"),
        ("sqlite:///a.db?password=x&mode=ro", "sqlite:///a.db?password=***&mode=ro"),
        ("auth.db_password=xx and token=yy", "auth.db_password=*** and token=***"),
        ("host=db password=zz", "host=db password=***"),
        ("sqlite:///${paths.output_dir}/a.db", "sqlite:///${paths.output_dir}/a.db"),
        ("max_tokens=5, me@example.com, a=b", "max_tokens=5, me@example.com, a=b"),
    ],
)
def test_redact_text(text, expected):
    assert redact_text(text) == expected


def test_redact_masks_secret_keys_and_keeps_the_rest():
    config = {
        "auth": {"url": "postgresql://a:b@h/d", "password": "x", "signing_key": None},
        "features": {"token_pattern": r"\w+", "n": 3},
        "hooks": [{"api_key": "k"}, "s3://bucket/key"],
    }
    assert redact(config) == {
        "auth": {"url": f"postgresql://a:{MASK}@h/d", "password": MASK, "signing_key": None},
        "features": {"token_pattern": r"\w+", "n": 3},
        "hooks": [{"api_key": MASK}, "s3://bucket/key"],
    }


def test_training_with_secret_store_urls_writes_no_secret(tmp_path):
    out = tmp_path / "out"
    result = run_cli(
        "automl",
        "dataset=iris",
        "model=lgbm",
        "search.n_trials=2",
        "evaluation.cv_folds=2",
        "evaluation.plots=false",
        "tracking=mlflow",
        f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
        f"search.storage='{store_url(tmp_path / 'study.db')}'",
        f"paths.output_dir={out}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = out.glob("runs/*/*")
    manifest = json.loads((run / "model" / "manifest.json").read_text())
    assert manifest["config"]["search"]["storage"].endswith(f"password={MASK}")
    with sqlite3.connect(tmp_path / "mlflow.db") as db:  # the run was tracked, params masked
        (storage,) = db.execute("SELECT value FROM params WHERE key = 'search.storage'").fetchone()
    assert storage.endswith(f"password={MASK}")
    with sqlite3.connect(tmp_path / "study.db") as db:  # the study was stored there
        assert db.execute("SELECT COUNT(*) FROM trials").fetchone()[0] == 2
    assert leaks(tmp_path) == []  # run dir, bundle, registry, mlflow store and artifacts
    assert SECRET not in result.stdout + result.stderr


def test_server_and_admin_with_a_secret_auth_url_write_no_secret(tmp_path):
    auth = store_url(tmp_path / "auth.db")
    admin = run_cli("automl.serving.admin", "--db", auth, "user", "add", "vera")
    assert admin.returncode == 0, admin.stderr
    key = run_cli("automl.serving.admin", "--db", auth, "key", "create", "vera")
    assert key.returncode == 0, key.stderr
    overrides = [
        f"paths.output_dir={tmp_path / 'out'}",
        f"hydra.run.dir={tmp_path / 'out' / 'serve'}",
        f"auth.url='{auth}'",
    ]
    log_path = tmp_path / "server.log"
    headers = {"Authorization": f"Bearer {key.stdout.strip()}"}
    with serve_process(overrides, log_path, ready="/health/live") as (url, _):
        reply = httpx.get(f"{url}/v1/projects", headers=headers, timeout=10)
        assert reply.status_code == 200  # the key was checked against that database
    copy = (tmp_path / "out" / "serve" / "serve_config.yaml").read_text()
    assert f"password={MASK}" in copy
    assert leaks(tmp_path / "out") == []
    assert SECRET not in log_path.read_text() + admin.stdout + admin.stderr


def test_ingest_from_a_database_url_with_a_password_writes_no_secret(tmp_path):
    database = tmp_path / "wine.db"
    with sqlite3.connect(database) as db:
        load_wine(as_frame=True).frame.to_sql("wines", db, index=False)
    url = f"sqlite:///file:{database}?mode=ro&uri=true&password={SECRET}"
    common = [
        f"conf_dir={tmp_path / 'conf'}",
        f"paths.output_dir={tmp_path / 'out'}",
        "target=target",
        "progress=false",
    ]
    good = run_cli("automl.ingest", f"input='{url}'", "+read.table=wines", "name=w", *common)
    assert good.returncode == 0, good.stderr[-3000:]
    dataset = (tmp_path / "conf" / "dataset" / "w.yaml").read_text()
    assert f"password={MASK}" in dataset  # the description names the source, masked
    bad = run_cli("automl.ingest", f"input='{url}'", "+read.table=nope", "name=x", *common)
    assert bad.returncode == 1 and "nope" in bad.stderr + bad.stdout
    assert leaks(tmp_path / "conf") == [] and leaks(tmp_path / "out") == []
    assert SECRET not in good.stdout + good.stderr + bad.stdout + bad.stderr


def test_hydra_files_of_a_sweep_are_masked(tmp_path):
    """Hydra saves each job's overrides before the job runs; a sweep also its multirun.yaml."""
    out = tmp_path / "out"
    result = run_cli(
        "automl",
        "-m",
        "dataset=iris",
        "model=linear",
        "search.n_trials=1",
        "evaluation.cv_folds=2",
        "evaluation.plots=false",
        "tracking=none",
        f"search.storage='{store_url(tmp_path / 'study.db')}'",
        "seed=1,2",
        f"paths.output_dir={out}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    saved = list(out.glob("sweeps/*/*/*/.hydra/overrides.yaml"))
    assert len(saved) == 2 and all(f"password={MASK}" in p.read_text() for p in saved)
    assert leaks(out) == []
    assert SECRET not in result.stdout + result.stderr
