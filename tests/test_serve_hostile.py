"""The server against hostile callers (issue 12, findings 2-5 and 9), in process (and on
a real uvicorn server for the limits on slow requests).

One module-wide world: a random forest on diabetes in project ``default`` and a LightGBM
model on iris in project ``other``; ``otto`` administers ``other``, ``ada`` ``default``.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
import yaml
from fastapi.testclient import TestClient
from helpers import FAST, compose_train
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from automl.apps.admin import main as admin
from automl.config import register_schemas
from automl.monitoring.drift import with_overrides
from automl.serving.app import create_app
from automl.serving.inputs import ApiError, parse
from automl.serving.prediction_log import PredictionLogger, read_log

RF = "default.diabetes"
LGBM = "other.iris"
TEAM = {
    "projects": ["default", "other"],
    "users": {
        "ada": {"roles": {"default": "admin"}},
        "otto": {"roles": {"other": "admin"}},
        "nemo": {"roles": {}},
    },
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Two trained models, keys for three users, and the app in process."""
    from automl.services.training import train

    root = tmp_path_factory.mktemp("hostile")
    out = f"paths.output_dir={root}"
    train(compose_train(["dataset=diabetes", "model=rf", *FAST, out]), root / "rf")
    train(compose_train(["dataset=iris", "model=lgbm", "project=other", *FAST, out]), root / "gb")
    (root / "team.yaml").write_text(yaml.safe_dump(TEAM))
    db = f"sqlite:///{root}/serving/auth.db"
    keys_file = root / "keys.json"
    assert admin(["--db", db, "setup", str(root / "team.yaml"), "--keys-out", str(keys_file)]) == 0
    register_schemas()
    with initialize_config_module("automl.conf.apps", version_base="1.3"):
        cfg = compose("serve", overrides=[out, "prediction_log.flush_seconds=0.1"])
    cfg.monitoring = with_overrides(cfg.monitoring, [])
    app = create_app(cfg)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield {
            "root": root,
            "client": client,
            "keys": json.loads(keys_file.read_text()),
            "store": cfg.prediction_log.store,
        }


def call(world, user: str | None, method: str, path: str, **kwargs):
    headers = kwargs.pop("headers", {})
    if user is not None:
        headers["Authorization"] = f"Bearer {world['keys'][user]}"
    return world["client"].request(method, path, headers=headers, **kwargs)


def logged(world, model: str):
    """The model's log once everything queued so far is written."""
    assert world["client"].app.state.server.logger.sync()
    return read_log(world["store"], model)


def diabetes_row(**changes) -> dict:
    row = {c: 0.01 for c in ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")}
    return {**row, **changes}


IRIS_ROW = {
    "sepal length (cm)": 5.1,
    "sepal width (cm)": 3.5,
    "petal length (cm)": 1.4,
    "petal width (cm)": 0.2,
}


# --- finding 2: feedback is tied to what the server issued for that model ---


def test_feedback_for_another_models_request_is_refused_and_changes_nothing(world):
    answer = call(
        world,
        "ada",
        "POST",
        f"/v1/models/{RF}/predict",
        json=diabetes_row(),
        headers={"X-Request-ID": "shared1"},
    )
    assert answer.status_code == 200, answer.text
    before = logged(world, RF)
    assert before["request_id"].tolist()[-1] == "shared1"
    crossed = call(
        world,
        "otto",
        "POST",
        f"/v1/models/{LGBM}/feedback",
        json={"feedback": [{"request_id": "shared1", "label": "999"}]},
    )
    missing = call(
        world,
        "otto",
        "POST",
        f"/v1/models/{LGBM}/feedback",
        json={"feedback": [{"request_id": "never-issued", "label": "999"}]},
    )
    assert crossed.status_code == missing.status_code == 422, crossed.text
    assert crossed.json() == json.loads(missing.text.replace("never-issued", "shared1"))
    assert RF not in crossed.text and "diabetes" not in crossed.text
    after = logged(world, RF)
    assert after["label"].isna().all() and len(after) == len(before)


def test_feedback_checks_labels_rows_and_applies_all_or_nothing(world):
    rid = call(world, "otto", "POST", f"/v1/models/{LGBM}/predict", json=[IRIS_ROW] * 2).json()[
        "request_id"
    ]
    path = f"/v1/models/{LGBM}/feedback"
    cases = [
        ({"request_id": rid, "row": 0, "label": "no-such-class"}, "not a class"),
        ({"request_id": rid, "row": 2, "label": "setosa"}, "no prediction"),
        ({"request_id": rid, "row": 99999999999999999999, "label": "setosa"}, "less than"),
    ]
    for bad, text in cases:
        good = {"request_id": rid, "row": 1, "label": "setosa"}
        refused = call(world, "otto", "POST", path, json={"feedback": [good, bad]})
        assert refused.status_code == 422, refused.text
        assert text in refused.text and "feedback.1" in refused.text.replace("[1]", ".1")
    log = logged(world, LGBM)
    assert log[log["request_id"] == rid]["label"].isna().all()  # nothing applied
    done = call(
        world,
        "otto",
        "POST",
        path,
        json={"feedback": [{"request_id": rid, "row": 1, "label": "setosa"}]},
    )
    assert done.json() == {"accepted": 1}
    # regression: a finite number only
    rid = call(world, "ada", "POST", f"/v1/models/{RF}/predict", json=diabetes_row()).json()[
        "request_id"
    ]
    text = call(
        world,
        "ada",
        "POST",
        f"/v1/models/{RF}/feedback",
        json={"feedback": [{"request_id": rid, "label": "high"}]},
    )
    assert text.status_code == 422 and "a number" in text.text
    ok = call(
        world,
        "ada",
        "POST",
        f"/v1/models/{RF}/feedback",
        json={"feedback": [{"request_id": rid, "label": 151}]},
    )
    assert ok.json() == {"accepted": 1}
    log = logged(world, RF)
    assert log[log["request_id"] == rid]["label"].tolist() == [151]


# --- finding 3: one bad record never loses a batch ---


def test_logger_skips_one_unwritable_record_and_writes_the_rest(tmp_path):
    cfg = OmegaConf.create(
        {
            "batch_size": 100,
            "flush_seconds": 0.1,
            "queue_size": 100,
            "store": {
                "_target_": "automl.serving.prediction_log.SqliteStore",
                "path": str(tmp_path / "log.db"),
            },
        }
    )
    failed: list[int] = []
    logger = PredictionLogger(cfg, on_failure=lambda reason, n: failed.append(n))
    proba = np.array([[0.9, 0.1]])
    logger.log("a", "p.m", 1, [{"x": 1.0}], ["n"], proba, ["n", "y"])
    logger.feedback([("a", 0, "y", "p.m", 1), ("b", 2**70, "y", "p.m", 1)])  # unwritable row
    logger.log("c", "p.m", 1, [{"x": 2.0}], ["y"], proba, ["n", "y"])
    logger.close()
    log = read_log(cfg.store, "p.m")
    assert log["request_id"].tolist() == ["a", "c"]
    assert log["label"].tolist()[0] == "y"
    assert sum(failed) == 1 and logger.failures == 1


def test_logger_flushes_everything_queued_on_close(tmp_path):
    cfg = OmegaConf.create(
        {
            "batch_size": 10,
            "flush_seconds": 30,
            "queue_size": 10000,
            "store": {
                "_target_": "automl.serving.prediction_log.SqliteStore",
                "path": str(tmp_path / "log.db"),
            },
        }
    )
    logger = PredictionLogger(cfg)
    for i in range(2000):
        logger.log(f"r{i}", "p.m", 1, [{"x": float(i)}], [1.0], None, None)
    logger.close()
    with sqlite3.connect(tmp_path / "log.db") as db:
        assert db.execute("SELECT COUNT(*) FROM predictions").fetchone() == (2000,)


# --- finding 4: errors reveal only what the caller may see ---


def test_errors_metrics_and_readiness_show_no_other_projects_names(world):
    call(world, "ada", "POST", f"/v1/models/{RF}/predict", json=diabetes_row())
    call(world, "otto", "POST", f"/v1/models/{LGBM}/predict", json=IRIS_ROW)
    root = str(world["root"])
    for path in (
        "/v1/models/other.nope",
        "/v1/models/other.nope/metadata",
        f"/v1/models/{LGBM}/metadata?version=99",
        f"/v1/models/{LGBM}/metadata?alias=x",
    ):
        answer = call(world, "otto", "GET", path)
        assert answer.status_code == 404, (path, answer.text)
        assert "diabetes" not in answer.text and root not in answer.text
        assert "registry.db" not in answer.text
    # "missing" and "not yours" read the same
    missing = call(world, "otto", "GET", "/v1/models/default.nope/metadata")
    theirs = call(world, "otto", "GET", f"/v1/models/{RF}/metadata")
    assert missing.status_code == theirs.status_code == 403
    assert missing.json() == json.loads(theirs.text.replace(RF, "default.nope"))
    for user in (None, "nemo"):
        ready = call(world, user, "GET", "/health/ready")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        assert "iris" not in ready.text and "diabetes" not in ready.text
        metrics = call(world, user, "GET", "/metrics")
        assert "iris" not in metrics.text and "diabetes" not in metrics.text
    ready = call(world, "otto", "GET", "/health/ready").json()
    assert [m.split("/")[0] for m in ready["models"]] == [LGBM]
    metrics = call(world, "otto", "GET", "/metrics")
    assert metrics.status_code == 200 and LGBM in metrics.text and "diabetes" not in metrics.text
    assert "automl_prediction_log_failures" in metrics.text


# --- finding 5: no 500 on finite input ---


@pytest.mark.parametrize("value", [1e308, -1e308, 1e-308, 3.5e38])
def test_extreme_finite_values_are_a_422_naming_the_column_or_scored(world, value):
    for user, model, row in (
        ("ada", RF, diabetes_row(age=value)),
        ("otto", LGBM, {**IRIS_ROW, "sepal length (cm)": value}),
    ):
        for body in (row, [row] * 20):  # the fast path and the pipeline
            answer = call(world, user, "POST", f"/v1/models/{model}/predict", json=body)
            assert answer.status_code in (200, 422), answer.text
            if answer.status_code == 422:
                column = "age" if model == RF else "sepal length (cm)"
                assert column in answer.text and "too large" in answer.text
            else:
                values = answer.json()["predictions"]
                assert all(
                    v is None or np.isfinite(v) if not isinstance(v, str) else True for v in values
                )


@pytest.mark.parametrize("batch", [1, 20], ids=["fast path", "pipeline"])
def test_invalid_unicode_is_a_422_and_never_reaches_the_log(world, batch):
    """JSON's "\\ud800" escape decodes to a lone surrogate that no response, log or report
    can encode (found by tests/test_serve_fuzz.py: 500s, and later monitoring 500s)."""
    row = json.dumps(diabetes_row()).replace('"sex": 0.01', '"sex": "\\ud800"')
    name = json.dumps(diabetes_row()).replace('"bmi"', '"b\\udfffmi"')
    for body in (row, name):
        text = "[" + ",".join([body] * batch) + "]"
        answer = call(world, "ada", "POST", f"/v1/models/{RF}/predict", content=text)
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"] == "invalid Unicode in the records"
    monitoring = call(world, "ada", "GET", f"/v1/models/{RF}/monitoring")
    assert monitoring.status_code == 200, monitoring.text


def test_monitoring_with_too_few_labels_gives_no_performance_verdict(world):
    """Fewer labels than ``performance.min_labels``: a note, not a 500 (found by fuzzing)."""
    for _ in range(3):
        call(world, "otto", "POST", f"/v1/models/{LGBM}/predict", json=IRIS_ROW)
    answer = call(world, "otto", "GET", f"/v1/models/{LGBM}/monitoring")
    assert answer.status_code == 200, answer.text
    performance = answer.json()["performance"]
    assert performance["signals"] == [] and "fewer than" in performance["note"]


# --- finding 9: limits apply while reading; the log queue is bounded in records; a
# request can neither hold the server forever nor crowd out the others ---


def peak_bytes(job) -> tuple[object, int]:
    """(what ``job()`` returned or raised, the peak memory it allocated)."""
    tracemalloc.start()
    try:
        try:
            result: object = job()
        except ApiError as exc:
            result = exc
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"[" + b"{}," * 2_000_000 + b"{}]", "application/json"),  # 6 MB, 2M records
        (b'{"columns": ["a"], "data": [' + b"[1]," * 1_500_000 + b"[1]]}", "application/json"),
        (b"a\n" + b"1\n" * 3_000_000, "text/csv"),
    ],
    ids=["records", "columnar", "csv"],
)
def test_the_row_limit_applies_before_the_rows_exist(body, content_type):
    refused, peak = peak_bytes(lambda: parse(body, content_type, 1000))
    assert isinstance(refused, ApiError) and refused.status == 413
    assert "at most 1000" in refused.message
    assert peak < 40 * 2**20  # parsing it all first took 150-400 MB


def test_row_limit_counts_records_not_brackets():
    """Braces inside strings never make a body look bigger than it is."""
    records = [{"a": "{[{[" * 50, "b": i} for i in range(100)]
    assert parse(json.dumps(records).encode(), "application/json", 100) == records
    body = json.dumps({"columns": ["a"], "data": [["[[{{"]] * 100}).encode()
    assert len(parse(body, "application/json", 100)) == 100
    with pytest.raises(ApiError, match="at most 99"):
        parse(json.dumps(records).encode(), "application/json", 99)


class BlockedStore:
    """A prediction log store whose writes wait for ``release`` (a slow disk)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.written: list[str] = []

    def write(self, rows: list[tuple], feedback: list[tuple]) -> None:
        self.release.wait(30)
        self.written += [r[0] for r in rows]

    def read(self, *args):  # pragma: no cover - not read here
        raise NotImplementedError


def test_log_queue_is_bounded_in_records_not_requests():
    store = BlockedStore()
    cfg = SimpleNamespace(batch_size=1, flush_seconds=0.05, queue_size=10, store=store)
    lost: list[tuple[str, int]] = []
    logger = PredictionLogger(cfg, on_failure=lambda reason, n: lost.append((reason, n)))
    logger.log("first", "p.m", 1, [{"x": 1}], [1.0], None, None)  # taken by the writer
    deadline = time.monotonic() + 10
    while logger.queued and time.monotonic() < deadline:
        time.sleep(0.01)
    logger.log("eight", "p.m", 1, [{"x": 1}] * 8, [1.0] * 8, None, None)
    logger.log("five", "p.m", 1, [{"x": 1}] * 5, [1.0] * 5, None, None)  # 13 > 10: dropped
    logger.log("two", "p.m", 1, [{"x": 1}] * 2, [1.0] * 2, None, None)  # 10: fits
    assert logger.queued == 10 and lost == [("queue_full", 5)]
    store.release.set()
    logger.close(30)
    assert sorted(set(store.written)) == ["eight", "first", "two"]
    assert len(store.written) == 11 and logger.queued == 0


@contextmanager
def served(world, *overrides: str) -> Iterator[tuple[str, Any]]:
    """(URL, app) of a real uvicorn server (in a thread) over the world's registry, with
    ``overrides`` of the serve config; stopped (lifespan shutdown included) on exit."""
    with initialize_config_module("automl.conf.apps", version_base="1.3"):
        cfg = compose("serve", overrides=[f"paths.output_dir={world['root']}", *overrides])
    cfg.monitoring = with_overrides(cfg.monitoring, [])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = create_app(cfg)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(60)


@pytest.fixture(scope="module")
def limited(world):
    """A real server over the world's registry: one request at a time, 3 s each."""
    overrides = ["limits.max_concurrent_requests=1", "limits.request_timeout=3.0"]
    with served(world, *overrides, "prediction_log.enabled=false") as (url, _):
        yield url


def test_stopping_the_server_with_a_full_log_queue_loses_nothing(world, tmp_path):
    """Nothing is written before shutdown (huge batches, a long flush interval): every
    logged prediction is written when the server stops."""
    key = {"Authorization": f"Bearer {world['keys']['ada']}"}
    store = tmp_path / "log.db"
    settings = [
        f"prediction_log.store.path={store}",
        "prediction_log.batch_size=1000000",
        "prediction_log.flush_seconds=3600",
    ]
    with served(world, *settings) as (url, _), httpx.Client(headers=key) as client:
        ids = []
        for i in range(300):
            answer = client.post(f"{url}/v1/models/{RF}/predict", json=diabetes_row(age=i / 1e3))
            assert answer.status_code == 200
            ids.append(answer.json()["request_id"])
        assert unwritten(store)  # everything still waits when the server is stopped
    with sqlite3.connect(store) as db:
        written = [r for (r,) in db.execute("SELECT request_id FROM predictions")]
    assert sorted(written) == sorted(ids)


def unwritten(store: Path) -> bool:
    """No prediction is in the log database yet."""
    if not store.exists():
        return True
    with sqlite3.connect(store) as db:
        tables = {r for (r,) in db.execute("SELECT name FROM sqlite_master")}
        return (
            "predictions" not in tables
            or not db.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]
        )


def dribble(seconds: float, steps: int = 10):
    """One diabetes record as a body sent slowly, in ``steps`` pieces over ``seconds``."""
    body = json.dumps(diabetes_row()).encode()
    size = -(-len(body) // steps)
    for start in range(0, len(body), size):
        time.sleep(seconds / steps)
        yield body[start : start + size]


def test_a_request_over_the_concurrency_limit_gets_503_and_health_still_answers(world, limited):
    key = {"Authorization": f"Bearer {world['keys']['ada']}"}
    slow: dict = {}

    def send_slowly() -> None:
        slow["answer"] = httpx.post(
            f"{limited}/v1/models/{RF}/predict", content=dribble(1.5), headers=key, timeout=30
        )

    warm = httpx.post(f"{limited}/v1/models/{RF}/predict", json=diabetes_row(), headers=key)
    assert warm.status_code == 200, warm.text  # the model is loaded: only the body is slow
    thread = threading.Thread(target=send_slowly)
    thread.start()
    time.sleep(0.3)  # the slow request holds the one slot while its body arrives
    busy = httpx.get(f"{limited}/v1/models", headers=key, timeout=10)
    assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
    assert "limits.max_concurrent_requests" in busy.json()["detail"]
    assert httpx.get(f"{limited}/health/live", timeout=10).status_code == 200
    thread.join(30)
    assert slow["answer"].status_code == 200, slow["answer"].text
    assert httpx.get(f"{limited}/v1/models", headers=key, timeout=10).status_code == 200


def test_a_request_that_outlives_the_timeout_gets_503_and_frees_its_slot(world, limited):
    key = {"Authorization": f"Bearer {world['keys']['ada']}"}
    answer = httpx.post(
        f"{limited}/v1/models/{RF}/predict", content=dribble(5.0), headers=key, timeout=30
    )
    assert answer.status_code == 503
    assert "limits.request_timeout" in answer.json()["detail"]
    after = httpx.post(f"{limited}/v1/models/{RF}/predict", json=diabetes_row(), headers=key)
    assert after.status_code == 200, after.text
