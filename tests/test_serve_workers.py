"""Two server workers (``workers=2``, real uvicorn processes) sharing one registry, one
auth database and one prediction log, on SQLite and on PostgreSQL: an alias move and a key
revocation are seen by every worker, every prediction is logged once, and ``/metrics``
adds up both workers' counts."""

from __future__ import annotations

import re
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from helpers import FAST, ROOT, compose_train, serve_process, set_up_team

from automl.bundle.registry import Registry
from automl.serving.prediction_log import SqliteStore, SqlStore, read_log

TEAM = {
    "projects": ["default"],
    "users": {"ada": {"roles": {"default": "viewer"}}, "vic": {"roles": {"default": "viewer"}}},
}
ROW = {
    "sepal length (cm)": 5.1,
    "sepal width (cm)": 3.5,
    "petal length (cm)": 1.4,
    "petal width (cm)": 0.2,
}
REQUESTS = 40


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """Two versions of default.iris in a registry under the returned folder."""
    from automl.services.training import train

    root = tmp_path_factory.mktemp("workers")
    for run in ("a", "b"):
        cfg = compose_train(["dataset=iris", "model=linear", *FAST, f"paths.output_dir={root}"])
        train(cfg, root / run)
    return root


class Caller:
    """Sends one-record predictions of default.iris@production, eight at a time, and
    counts the answered ones by version."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.versions: Counter[int] = Counter()

    def predict(self, key: str, n: int = REQUESTS) -> list[httpx.Response]:
        def one(_: int) -> httpx.Response:
            return httpx.post(
                f"{self.url}/v1/models/default.iris@production/predict",
                json=ROW,
                headers={"Authorization": f"Bearer {key}"},
                timeout=30,
            )

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(one, range(n)))
        self.versions.update(a.json()["version"] for a in answers if a.status_code == 200)
        return answers


def wait_for(condition: Callable[[], bool], seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not seen by every worker in time"
        time.sleep(0.2)


@pytest.mark.parametrize("backend", [pytest.param("sqlite", marks=pytest.mark.slow), "postgresql"])
def test_two_workers_share_aliases_keys_the_log_and_metrics(trained, tmp_path, backend, request):
    registry = Registry(trained / "registry" / "registry.db", trained / "registry" / "models")
    registry.set_alias("default.iris", "production", 1)
    if backend == "postgresql":
        auth = request.getfixturevalue("postgres_url")
        store, node = SqlStore(auth), f"'{auth}'"  # a URL: the log in that database
    else:
        auth, path = None, tmp_path / "predictions.db"
        store = SqliteStore(path)
        node = f"{{_target_: {SqliteStore.__module__}.SqliteStore, path: '{path}'}}"
    team = set_up_team(tmp_path, TEAM, auth)
    overrides = [
        "workers=2",
        f"paths.output_dir={trained}",
        f"auth.url='{team['db']}'",
        "auth.cache_ttl=0.5",
        "cache.resolve_ttl=0.5",
        "prediction_log.flush_seconds=0.1",
        f"prediction_log.store={node}",
        f"hydra.run.dir={tmp_path / 'serve'}",
    ]
    ada, vic = team["keys"]["ada"], team["keys"]["vic"]
    with serve_process(overrides, tmp_path / "serve.log") as (url, _):
        caller = Caller(url)
        assert {a.status_code for a in caller.predict(ada)} == {200}
        assert set(caller.versions) == {1}

        registry.set_alias("default.iris", "production", 2)  # both workers within 0.5 s
        wait_for(lambda: {a.json()["version"] for a in caller.predict(vic, 16)} == {2})
        assert {a.json()["version"] for a in caller.predict(vic)} == {2}

        revoke = [*team["admin"], "key", "revoke", ada]
        done = subprocess.run(revoke, capture_output=True, text=True, cwd=ROOT)
        assert done.returncode == 0, done.stderr
        wait_for(lambda: {a.status_code for a in caller.predict(ada, 16)} == {401})
        assert {a.status_code for a in caller.predict(ada)} == {401}

        metrics = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {vic}"}).text
        files = list((tmp_path / "serve" / "prometheus").glob("counter_*.db"))
    assert len(files) == 2, files  # each worker counted its own requests
    counted: Counter[int] = Counter()
    pattern = (
        r'automl_predicted_rows_total\{model="default.iris",path="\w+",version="(\d+)"\} (\S+)'
    )
    for version, value in re.findall(pattern, metrics):
        counted[int(version)] += int(float(value))
    assert counted == caller.versions  # /metrics adds up both workers
    logged = read_log(store, "default.iris")  # the server wrote everything before it stopped
    assert len(logged) == sum(caller.versions.values())  # each prediction logged once
    assert logged["request_id"].is_unique
    assert Counter(logged["version"].astype(int)) == caller.versions
