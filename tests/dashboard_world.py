"""A small real world for the dashboard tests: a team in an auth database, models trained
by the real CLI in two projects, predictions and feedback through the real app, an online
check and a batch monitoring report.

``build_world(root)`` writes everything under ``root`` and returns what tests need: the
serve overrides (``paths.output_dir``, ``auth.url``), the users' keys, the model names.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi.testclient import TestClient
from helpers import run_cli, set_up_team
from sklearn.datasets import load_breast_cancer, load_wine

from automl.config import compose_config
from automl.serving.app import create_app

ALPHA = "alpha.breast_cancer"  # binary; two versions; plots
BETA = "beta.wine"  # multiclass, another project
TEAM = {
    "projects": ["alpha", "beta"],
    "users": {
        "root": {"roles": {"*": "admin"}},  # site admin
        "ada": {"roles": {"alpha": "admin"}},
        "eve": {"roles": {"alpha": "editor"}},
        "vic": {"roles": {"alpha": "viewer"}},
        "bea": {"roles": {"beta": "editor"}},
    },
}
TRAIN = ["search.n_trials=2", "evaluation.cv_folds=2", "tracking=none"]


def train(out: Path, *overrides: str) -> None:
    done = run_cli("automl", *TRAIN, f"paths.output_dir={out}", *overrides)
    assert done.returncode == 0, done.stderr[-3000:]


def cancer_rows(n: int, shift: float = 0.0) -> pd.DataFrame:
    """Rows of the breast cancer data as the model's input (``shift`` scales the first
    five columns, so the monitor sees drift)."""
    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.frame.drop(columns="target").head(n).copy()
    for col in frame.columns[:5]:
        frame[col] = frame[col] * (1 + shift)
    labels = bunch.target.head(n).map(dict(enumerate(bunch.target_names)))
    return frame.assign(diagnosis=labels.to_numpy())


def serve_config(root: Path, db: str, *extra: str) -> Any:
    return compose_config(
        "automl.conf.apps",
        "serve",
        [f"paths.output_dir={root / 'outputs'}", f"auth.url={db}", *extra],
    )


def build_world(root: Path) -> dict[str, Any]:
    """Train, serve, predict, give feedback, check and monitor; see the module docstring."""
    out = root / "outputs"
    team = set_up_team(root, TEAM)
    train(out, "project=alpha", "dataset=breast_cancer", "model=lgbm")
    train(out, "project=alpha", "dataset=breast_cancer", "model=rf", "evaluation.plots=false")
    train(out, "project=beta", "dataset=wine", "model=lgbm", "evaluation.plots=false")
    done = run_cli(
        "automl", "-m", *TRAIN, f"paths.output_dir={out}", "project=alpha",
        "dataset=breast_cancer", "model=linear,hist_gb", "registry.enabled=false",
        "evaluation.plots=false",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    keys = team["keys"]
    rows = cancer_rows(200, shift=0.5)
    app = create_app(serve_config(root, team["db"]))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        editor = {"X-API-Key": keys["ada"]}
        for start in range(0, 200, 50):
            part = rows.iloc[start : start + 50]
            answer = client.post(
                f"/v1/models/{ALPHA}/predict",
                json=part.drop(columns="diagnosis").to_dict("records"),
                headers=editor,
            )
            assert answer.status_code == 200, answer.text
            rid = answer.json()["request_id"]
            labels = [
                {"request_id": rid, "row": i, "label": str(label)}
                for i, label in enumerate(part["diagnosis"])
            ]
            given = client.post(
                f"/v1/models/{ALPHA}/feedback", json={"feedback": labels}, headers=editor
            )
            assert given.status_code == 200, given.text
        wine = load_wine(as_frame=True).frame.drop(columns="target").head(20)
        answer = client.post(
            f"/v1/models/{BETA}/predict",
            json=wine.to_dict("records"),
            headers={"X-API-Key": keys["bea"]},
        )
        assert answer.status_code == 200, answer.text
        checked = client.get(f"/v1/models/{ALPHA}/monitoring", headers=editor)
        assert checked.status_code == 200, checked.text
    batch = root / "batch.csv"
    cancer_rows(150).to_csv(batch, index=False)
    done = run_cli("automl.monitor", f"model={ALPHA}", f"input={batch}", f"paths.output_dir={out}")
    assert done.returncode in (0, 2, 3), done.stderr[-3000:]
    return {
        "root": root,
        "out": out,
        "db": team["db"],
        "keys": keys,
        "admin": team["admin"],
        "overrides": [f"paths.output_dir={out}", f"auth.url={team['db']}"],
        "models": [ALPHA, BETA],
    }


def ui_app(world: dict[str, Any], *extra: str) -> Any:
    """The real serving app (API and dashboard) over the world's stores."""
    return create_app(serve_config(world["root"], world["db"], *extra))


def csrf_of(html: str) -> str:
    """The CSRF token of the first form of a page."""
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no form with a CSRF token on the page"
    return found.group(1)


def sign_in(client: TestClient, key: str) -> TestClient:
    """``client`` signed in to the dashboard with ``key`` (through the sign-in form)."""
    form = client.get("/ui/sign-in")
    assert form.status_code == 200, form.text
    done = client.post(
        "/ui/sign-in",
        data={"csrf": csrf_of(form.text), "key": key, "next": "/ui/"},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    return client
