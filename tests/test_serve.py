"""The REST server for real: uvicorn on 127.0.0.1, keys from the admin CLI, trained models.

One module-wide world: adult (LightGBM, 2 versions) in project ``default`` and iris in
project ``other``, 8 users x 10 projects from a YAML file, and ``python -m automl.serve``.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from helpers import (
    FAST,
    ROOT,
    SHARED_DATA,
    adult_test_rows,
    compose_train,
    serve_process,
    set_up_team,
)

from automl import load_model
from automl.bundle.registry import Registry
from automl.serving.prediction_log import read_log

ADULT = "default.adult"
IRIS = "other.iris"
PROJECTS = ["default", "other", *[f"p{i}" for i in range(3, 11)]]
TEAM = {
    "projects": PROJECTS,
    "users": {
        "ada": {"roles": {"default": "admin", "p3": "viewer"}},
        "eddie": {"roles": {"default": "editor", "p4": "admin"}},
        "vera": {"roles": {"default": "viewer"}},
        "otto": {"roles": {"other": "admin"}},
        "boss": {"roles": {p: "admin" for p in PROJECTS}},
        "pia": {"roles": {f"p{i}": "editor" for i in range(3, 11)}},
        "quinn": {"roles": {"p5": "viewer", "p6": "viewer", "other": "viewer"}},
        "nemo": {"roles": {}},
    },
}


def adult_test_frame(n: int | None = None, labels: bool = False) -> pd.DataFrame:
    frame = adult_test_rows(labels)
    return frame if n is None else frame.head(n)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Trained models in a registry, the auth database set up from YAML, keys."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    root = tmp_path_factory.mktemp("serve")
    out = f"paths.output_dir={root}"
    adult = ["dataset=adult", "model=lgbm", "model.classifier.n_estimators=300", *FAST, out]
    from automl.services.training import train

    started = time.perf_counter()
    train(compose_train(adult), root / "runs" / "adult")
    iris = ["dataset=iris", "model=linear", "project=other", *FAST, out]
    train(compose_train(iris), root / "iris")
    registry = Registry(root / "registry" / "registry.db", root / "registry" / "models")
    bundle = root / "runs" / "adult" / "model"  # version 2: the same bundle registered again
    registry.register(ADULT, bundle, load_model(bundle).manifest, root / "runs" / "adult")
    registry.set_alias(ADULT, "production", 1)
    print(f"trained in {time.perf_counter() - started:.1f} s")
    team = set_up_team(root, TEAM)
    assert sorted(team["keys"]) == sorted(TEAM["users"])
    return {"root": root, **team}


@pytest.fixture(scope="module")
def server(world):
    """``python -m automl.serve`` on a free port, stopped after the module."""
    root = world["root"]
    overrides = [
        f"paths.output_dir={root}",
        f"hydra.run.dir={root}/serve",
        f"preload=[{ADULT}]",
        "cache.resolve_ttl=0.2",
        "auth.cache_ttl=0.2",
        "fast_path.max_rows=4",
        "limits.max_body_bytes=200000",
        "limits.max_batch_rows=1000",
        "prediction_log.flush_seconds=0.2",
        f"monitoring={root / 'monitoring.yaml'}",
    ]
    (root / "monitoring.yaml").write_text(
        yaml.safe_dump(
            {
                "window": {"rows": 1000},
                "alerts": {
                    "state": str(root / "alerts-state.json"),
                    "sinks": [
                        {
                            "_target_": "automl.monitoring.alerts.JsonlSink",
                            "path": str(root / "alerts.jsonl"),
                        }
                    ],
                },
            }
        )
    )
    with serve_process(overrides, root / "server.log") as (url, proc):
        yield {**world, "url": url, "proc": proc}


PARQUET = "application/vnd.apache.parquet"


def arrow_twice() -> bytes:
    """An Arrow IPC stream whose two columns have one name (``age``)."""
    table = pa.table([pa.array([30]), pa.array([40])], names=["age", "age"])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def client(server, user: str | None) -> httpx.Client:
    headers = {} if user is None else {"Authorization": f"Bearer {server['keys'][user]}"}
    return httpx.Client(base_url=server["url"], headers=headers, timeout=30)


def records(n: int) -> list[dict]:
    return adult_test_frame(n).to_dict("records")


def test_health_docs_and_metrics(server):
    with client(server, None) as c:
        assert c.get("/health/live").json() == {"status": "alive"}
        assert c.get("/health/ready").json() == {"status": "ready"}  # no names without a key
        spec = c.get("/openapi.json").json()
        assert "/v1/models/{name}/predict" in spec["paths"]
        assert c.get("/docs").status_code == 200
    with client(server, "vera") as c:
        assert c.post(f"/v1/models/{ADULT}/predict", json=records(1)[0]).status_code == 200
        ready = c.get("/health/ready").json()
        assert ready["status"] == "ready" and ready["models"] == [f"{ADULT}/2"]  # preloaded
        text = c.get("/metrics").text
    for user in (None, "otto"):  # private by default: no model of project default
        with client(server, user) as c:
            assert ADULT not in c.get("/metrics").text
            assert ADULT not in c.get("/health/ready").text
    line = f'automl_requests_total{{endpoint="predict",model="{ADULT}",status="200",version="2"}}'
    assert line in text
    assert f'automl_request_seconds_bucket{{endpoint="predict",le="0.01",model="{ADULT}"' in text


# --- auth: roles x projects x endpoints ---

ENDPOINTS = {  # name: (method, path, body, role needed)
    "versions": ("GET", "/v1/models/{m}", None, "viewer"),
    "metadata": ("GET", "/v1/models/{m}/metadata", None, "viewer"),
    "predict": ("POST", "/v1/models/{m}/predict", "record", "viewer"),
    "feedback": ("POST", "/v1/models/{m}/feedback", "feedback", "editor"),
    "audit": ("GET", "/v1/projects/{p}/audit", None, "admin"),
}
RANK = {"viewer": 0, "editor": 1, "admin": 2}


def call(c: httpx.Client, endpoint: str, model: str):
    method, path, body, _ = ENDPOINTS[endpoint]
    path = path.format(m=model, p=model.split(".")[0])
    if body == "record":
        payload = records(1)[0] if model.startswith("default") else {"sepal length (cm)": 5.0}
        return c.request(method, path, json=payload)
    if body == "feedback":
        return c.request(method, path, json={"feedback": [{"request_id": "r1", "label": "x"}]})
    return c.request(method, path)


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
@pytest.mark.parametrize("user", ["ada", "eddie", "vera", "otto", "quinn", "nemo", None])
def test_auth_matrix(server, user, endpoint):
    roles = TEAM["users"][user]["roles"] if user else {}
    need = ENDPOINTS[endpoint][3]
    for model in (ADULT, "default.nope", IRIS, "other.nope"):
        with client(server, user) as c:
            response = call(c, endpoint, model)
        project = model.split(".")[0]
        role = roles.get(project)
        if user is None:
            expected = 401
        elif role is None or RANK[role] < RANK[need]:
            expected = 403
        elif model.endswith("nope") and endpoint != "audit":
            expected = 404
        else:  # "r1" was never issued: feedback for it is refused
            expected = (
                422 if endpoint == "feedback" or (endpoint, model) == ("predict", IRIS) else 200
            )
        assert response.status_code == expected, (user, endpoint, model, response.text)
        hidden = [m for m in (ADULT, IRIS) if m.split(".")[0] not in roles and m != model]
        assert not any(m in response.text for m in hidden), (user, endpoint, response.text)
        assert str(server["root"]) not in response.text  # no server paths either
        body = response.json()
        if expected == 403:  # the same answer whether the model exists or not
            assert body["detail"] == (
                f"no {need} access to "
                + (f"project '{project}'" if endpoint == "audit" else f"model '{model}'")
                + f" for user '{user}'"
            )
    with client(server, user) as c:  # nor in the open routes: metrics and readiness
        for path in ("/metrics", "/health/ready"):
            text = c.get(path).text
            assert not any(m in text for m in (ADULT, IRIS) if m.split(".")[0] not in roles)


def test_listing_shows_only_the_callers_projects(server):
    with client(server, "vera") as c:
        names = [m["name"] for m in c.get("/v1/models").json()["models"]]
        assert names == [ADULT]
        assert c.get("/v1/projects").json()["projects"] == [
            {"project": "default", "role": "viewer"}
        ]
    with client(server, "boss") as c:
        listed = {m["name"]: m for m in c.get("/v1/models").json()["models"]}
    assert set(listed) == {ADULT, IRIS}
    versions = {v["version"]: v["aliases"] for v in listed[ADULT]["versions"]}
    assert versions == {1: ["production"], 2: []}


def test_revoked_key_is_refused(server):
    made = subprocess.run(
        [*server["admin"], "key", "create", "eddie", "--label", "to revoke"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    key = made.stdout.strip()
    assert made.returncode == 0 and key.startswith("ak_")
    with httpx.Client(base_url=server["url"], headers={"X-API-Key": key}) as c:
        assert c.get(f"/v1/models/{ADULT}").status_code == 200
        done = subprocess.run(
            [*server["admin"], "key", "revoke", key], capture_output=True, cwd=ROOT
        )
        assert done.returncode == 0
        time.sleep(0.3)  # auth.cache_ttl
        response = c.get(f"/v1/models/{ADULT}")
    assert response.status_code == 401 and "revoked" in response.json()["detail"]
    with client(server, None) as c:
        response = c.get(f"/v1/models/{ADULT}", headers={"X-API-Key": "ak_nope_nope"})
    assert response.status_code == 401


# --- metadata and prediction ---


def test_metadata_from_the_contract(server):
    with client(server, "vera") as c:
        meta = c.get(f"/v1/models/{ADULT}/metadata", params={"alias": "production"}).json()
    assert meta["version"] == 1 and meta["classes"] == ["<=50K", ">50K"]
    assert meta["metrics"]["auc"] > 0.8 and meta["trained_at"] and meta["family"] == "lgbm"
    schema = meta["input_schema"]
    assert schema["properties"]["sex"] == {"type": "string", "enum": ["Female", "Male"]}
    assert schema["properties"]["age"]["maximum"] == 120 and not schema["additionalProperties"]
    assert "income" not in schema["properties"] and len(schema["required"]) == 14
    assert meta["fast_path"] == "compiled" and meta["contributions"] is True


def expected_proba(version: int, frame: pd.DataFrame, root: Path) -> np.ndarray:
    registry = Registry(root / "registry" / "registry.db", root / "registry" / "models")
    model = load_model(f"{ADULT}/{version}", registry)
    return model.predict_proba(frame)[">50K"].to_numpy()


def tables(frame: pd.DataFrame) -> dict[str, bytes]:
    """``frame`` as an Arrow IPC stream and as a Parquet file, by Content-Type."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    stream = pa.BufferOutputStream()
    with pa.ipc.new_stream(stream, table.schema) as writer:
        writer.write_table(table)
    parquet = pa.BufferOutputStream()
    pq.write_table(table, parquet)
    return {
        "application/vnd.apache.arrow.stream": stream.getvalue().to_pybytes(),
        "application/vnd.apache.parquet": parquet.getvalue().to_pybytes(),
    }


def test_every_body_form_gives_the_pipelines_predictions(server):
    frame = adult_test_frame(12)
    rows = frame.to_dict("records")
    expected = expected_proba(2, frame, server["root"])
    with client(server, "vera") as c:
        url = f"/v1/models/{ADULT}/predict"
        one = c.post(url, json=rows[0]).json()
        many = c.post(url, json=rows).json()
        few = c.post(url, json=rows[:3]).json()
        columnar = c.post(
            url, json={"columns": list(frame.columns), "data": frame.to_numpy().tolist()}
        ).json()
        csv = c.post(
            url, content=frame.to_csv(index=False), headers={"Content-Type": "text/csv"}
        ).json()
        arrow, parquet = (
            c.post(url, content=content, headers={"Content-Type": kind}).json()
            for kind, content in tables(frame).items()
        )
    assert one["path"] == "fast" and few["path"] == "fast" and many["path"] == "pipeline"
    for answer in (many, columnar, csv, arrow, parquet):
        got = [p[">50K"] for p in answer["probabilities"]]
        assert np.allclose(got, expected, rtol=0, atol=1e-12)
        assert answer["predictions"] == np.where(expected > 0.5, ">50K", "<=50K").tolist()
    assert one["probabilities"][0][">50K"] == pytest.approx(expected[0], abs=1e-12)
    assert [p[">50K"] for p in few["probabilities"]] == pytest.approx(expected[:3], abs=1e-12)
    assert one["version"] == 2 and len(one["request_id"]) == 32


def test_fast_path_equals_the_pipeline_on_every_adult_test_row(server):
    """The compiled path (in-process, as the server builds it) on all 16,281 test rows."""
    from hydra import compose, initialize_config_module

    from automl.serving.models import ModelCache

    with initialize_config_module("automl.conf.apps", version_base="1.3"):
        cfg = compose("serve", overrides=[f"paths.output_dir={server['root']}"])
    registry = Registry(cfg.registry.uri, cfg.registry.store)
    cache = ModelCache(registry, cfg.cache, cfg.fast_path, cfg.compiled, cfg.contributions)
    served = cache.get(ADULT, 1)
    frame = adult_test_frame()
    model = served.model
    expected = model.pipeline.predict_proba(model.prepare(frame))
    got = np.vstack([served.score_fast([r]) for r in frame.to_dict("records")])
    assert got.shape == expected.shape == (16281, 2)
    assert np.array_equal(got, expected)  # bit for bit, not approximately
    assert np.array_equal(model.predict_proba(frame).to_numpy(), expected)  # compiled batch
    # and through HTTP, record by record, with the raw values ('?' markers, spaces)
    rows = frame.head(100).to_dict("records")
    rows[0]["workclass"] = "  " + str(rows[0]["workclass"])
    with client(server, "vera") as c:
        for i, row in enumerate(rows):
            answer = c.post(f"/v1/models/{ADULT}/predict?version=1", json=row).json()
            assert answer["path"] == "fast"
            assert answer["probabilities"][0][">50K"] == expected[i, 1]


def test_the_predict_shortcut_answers_as_the_route(server):
    """Without a query string, predict skips FastAPI's routing and dependency solving (the
    shortcut); its answers and its errors are the route's (``?contributions=false`` takes
    the route with the same meaning)."""
    row = json.dumps(records(1)[0])
    batch = json.dumps(records(8))
    cases = [
        ("vera", ADULT, row),  # one record: the fast path
        ("vera", ADULT, batch),  # past fast_path.max_rows: the pipeline
        (None, ADULT, row),  # 401: no key
        ("otto", ADULT, row),  # 403: no role on the project
        ("otto", "other.nothing", row),  # 404 (after the role check)
        ("vera", ADULT, "{not json"),  # 400
        ("vera", ADULT, json.dumps({"age": "old"})),  # 422: the contract
    ]
    for user, name, body in cases:
        with client(server, user) as c:
            url = f"/v1/models/{name}/predict"
            headers = {"Content-Type": "application/json"}
            short = c.post(url, content=body, headers=headers)
            routed = c.post(f"{url}?contributions=false", content=body, headers=headers)
        assert short.status_code == routed.status_code, (user, name, short.text)
        got, want = short.json(), routed.json()
        if short.status_code == 200:
            assert got.pop("request_id") != want.pop("request_id")
        assert got == want, (user, name)


def test_contributions_add_up_to_the_probability(server):
    """Per input column (one-hot categories summed back), on the probability scale."""
    with client(server, "vera") as c:
        answer = c.post(f"/v1/models/{ADULT}/predict?contributions=true", json=records(2)).json()
    assert answer["explanation"]["output"] == "the probability of class '>50K'"
    for proba, contrib in zip(answer["probabilities"], answer["contributions"]):
        total = contrib["base_value"] + sum(contrib["values"].values())
        assert total == pytest.approx(proba[">50K"], abs=1e-6)
        assert set(contrib["values"]) == set(records(1)[0])


# --- bad input: always a 4xx with a JSON body that names the problem ---


def bad(server, body=None, content=None, headers=None, params=None):
    with client(server, "vera") as c:
        return c.post(
            f"/v1/models/{ADULT}/predict",
            json=body,
            content=content,
            headers=headers,
            params=params,
        )


def record(**changes):
    row = records(1)[0]
    for key, value in changes.items():
        if value is KeyError:
            row.pop(key)
        else:
            row[key] = value
    return row


@pytest.mark.parametrize(
    "case, status, column, text",
    [
        ("wrong type", 422, "age", "wrong type"),
        ("missing column", 422, "age", "required column missing"),
        ("extra column", 422, "colour", "not in the contract"),
        ("NaN", 422, "hours-per-week", "missing value not allowed"),
        ("inf", 422, "hours-per-week", "finite"),
        ("not allowed", 422, "sex", "allowed set"),
        ("out of range", 422, "age", "less_than_or_equal_to(120.0)"),
        ("nested value", 422, "age", "a scalar value"),
        ("empty body", 422, None, "the body is empty"),
        ("empty list", 422, None, "no records"),
        ("malformed JSON", 400, None, "malformed JSON"),
        ("malformed CSV", 400, None, "malformed CSV"),
        ("columnar shape", 422, None, "a list of 14 values"),
        ("oversized body", 413, None, "at most 200000"),
        ("too many rows", 413, None, "at most 1000"),
        ("content type", 415, None, "use application/json, text/csv"),
        ("malformed Parquet", 400, None, "malformed parquet body"),
        ("malformed Arrow", 400, None, "malformed stream body"),
        ("Arrow column named twice", 400, None, "name every column once"),
        ("Parquet over the row limit", 413, None, "at most 1000"),
        ("bad version", 404, None, "no version 9"),
        ("unknown alias", 404, None, "no alias 'nope'"),
    ],
)
def test_bad_input(server, case, status, column, text):
    cols = list(records(1)[0])
    response = {
        "wrong type": lambda: bad(server, [record(), record(age="old")]),
        "missing column": lambda: bad(server, record(age=KeyError)),
        "extra column": lambda: bad(server, record(colour="red")),
        "NaN": lambda: bad(server, content=json.dumps(record(**{"hours-per-week": math.nan}))),
        "inf": lambda: bad(server, content=json.dumps(record(**{"hours-per-week": math.inf}))),
        "not allowed": lambda: bad(server, record(sex="Robot")),
        "out of range": lambda: bad(server, record(age=130)),
        "nested value": lambda: bad(server, record(age=[1, 2])),
        "empty body": lambda: bad(server, content=b""),
        "empty list": lambda: bad(server, []),
        "malformed JSON": lambda: bad(server, content=b'{"age": 3'),
        "malformed CSV": lambda: bad(
            server, content=b'a,b\n1,"2\n', headers={"Content-Type": "text/csv"}
        ),
        "columnar shape": lambda: bad(server, {"columns": cols, "data": [[1, 2]]}),
        "oversized body": lambda: bad(server, [record()] * 900),
        "too many rows": lambda: bad(server, {"columns": ["age"], "data": [[1]] * 1001}),
        "content type": lambda: bad(
            server, content=b"age=3", headers={"Content-Type": "text/plain"}
        ),
        "malformed Parquet": lambda: bad(
            server, content=b"PAR1 not really", headers={"Content-Type": PARQUET}
        ),
        "malformed Arrow": lambda: bad(
            server,
            content=b"\xff\xff\xff\xffnot arrow",
            headers={"Content-Type": "application/vnd.apache.arrow.stream"},
        ),
        "Arrow column named twice": lambda: bad(
            server,
            content=arrow_twice(),
            headers={"Content-Type": "application/vnd.apache.arrow.stream"},
        ),
        "Parquet over the row limit": lambda: bad(
            server,
            content=tables(pd.DataFrame({"age": range(1001)}))[PARQUET],
            headers={"Content-Type": PARQUET},
        ),
        "bad version": lambda: bad(server, record(), params={"version": 9}),
        "unknown alias": lambda: bad(server, record(), params={"alias": "nope"}),
    }[case]()
    assert response.status_code == status, response.text[:500]
    body = response.json()
    assert text in body["detail"] or any(text in str(e) for e in body["errors"]), body
    if column is not None:
        assert {e["column"] for e in body["errors"] if "column" in e} == {column}, body
        assert all(e.get("expected") for e in body["errors"])


def test_unseen_category_is_handled_as_in_training(server):
    row = record(**{"native-country": "Atlantis", "workclass": "?"})
    expected = expected_proba(2, pd.DataFrame([row]), server["root"])
    answer = bad(server, row).json()
    assert answer["probabilities"][0][">50K"] == pytest.approx(expected[0], abs=1e-12)


# --- prediction log and feedback ---


def test_every_prediction_is_logged_and_feedback_attaches_labels(server):
    rows = records(3)
    with client(server, "ada") as c:
        answer = c.post(f"/v1/models/{ADULT}/predict", json=rows).json()
        rid = answer["request_id"]
        done = c.post(
            f"/v1/models/{ADULT}/feedback",
            json={"feedback": [{"request_id": rid, "row": 1, "label": ">50K"}]},
        )
        assert done.json() == {"accepted": 1}
        bad_feedback = c.post(f"/v1/models/{ADULT}/feedback", json={"feedback": [{"row": -1}]})
        assert bad_feedback.status_code == 422
    store = server["root"] / "serving" / "predictions.db"
    deadline = time.monotonic() + 10
    while True:
        log = read_log(store, ADULT)
        mine = log[log["request_id"] == rid]
        if len(mine) == 3 and mine["label"].notna().any() or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert list(log.columns[:4]) == ["request_id", "ts", "model", "version"]
    assert list(log.columns[4:18]) == list(rows[0])
    assert list(log.columns[18:]) == ["prediction", "proba_<=50K", "proba_>50K", "label"]
    assert mine["version"].tolist() == [2, 2, 2]
    assert mine["prediction"].tolist() == answer["predictions"]
    assert mine["proba_>50K"].tolist() == [p[">50K"] for p in answer["probabilities"]]
    assert mine["age"].tolist() == [r["age"] for r in rows]
    assert mine["label"].isna().tolist() == [True, False, True]
    assert mine["label"].iloc[1] == ">50K"
    assert abs(mine["ts"].iloc[0] - time.time()) < 60
    assert len(read_log(store, ADULT, version=2, last=2)) == 2


def test_online_monitoring_names_the_drifted_columns_and_alerts_once(server):
    # one education level only: the window drifts on education; feedback labels give
    # the window's performance next to the test metrics
    frame = adult_test_frame(labels=True)
    window = frame[frame["education"] == "Bachelors"].head(1000)
    with client(server, "ada") as c:
        for start in range(0, 1000, 250):
            part = window.iloc[start : start + 250]
            answer = c.post(
                f"/v1/models/{ADULT}/predict",
                params={"version": 2},
                json=part.drop(columns="income").to_dict("records"),
            ).json()
            feedback = [
                {"request_id": answer["request_id"], "row": i, "label": label}
                for i, label in enumerate(part["income"])
            ]
            done = c.post(f"/v1/models/{ADULT}/feedback", json={"feedback": feedback})
            assert done.json() == {"accepted": 250}
        report = c.get(f"/v1/models/{ADULT}/monitoring", params={"version": 2})
        again = c.get(f"/v1/models/{ADULT}/monitoring", params={"version": 2}).json()
    with client(server, "nemo") as c:
        assert c.get(f"/v1/models/{ADULT}/monitoring").status_code == 403
    assert report.status_code == 200, report.text
    report = report.json()
    assert report["rows"] == 1000 and report["version"] == 2
    assert report["status"] in ("warning", "drift")
    assert "education" in report["drift"]["drifted_columns"]
    assert "column:education" in report["signals"]
    performance = report["performance"]
    assert performance["rows"] == 1000
    assert 0.5 < performance["metrics"]["auc"]["current"] <= 1
    assert performance["metrics"]["auc"]["reference"] > 0.9
    alerts = (server["root"] / "alerts.jsonl").read_text().splitlines()
    assert len(alerts) == 1 and json.loads(alerts[0])["model"] == f"{ADULT}/2"
    assert report["alert"]["signals"] == report["signals"]
    assert again["alert"] is None  # the same incident: cooling down, no second alert


def test_registry_cli_changes_are_role_checked_and_in_the_servers_audit(server):
    root = server["root"]
    registry = [
        sys.executable,
        "-m",
        "automl.registry",
        "--registry",
        str(root / "registry"),
        "--auth-db",
        server["db"],
    ]
    refused = subprocess.run(
        [*registry, "--actor", "vera", "promote", f"{ADULT}/2", "staging"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert refused.returncode == 1
    assert "no editor access to project 'default' for user 'vera'" in refused.stderr
    for change in (["promote", f"{ADULT}/2", "staging"], ["unalias", ADULT, "staging"]):
        done = subprocess.run(
            [*registry, "--actor", "eddie", *change], capture_output=True, text=True, cwd=ROOT
        )
        assert done.returncode == 0, done.stderr
    with client(server, "ada") as c:
        audit = c.get("/v1/projects/default/audit", params={"last": 2}).json()["audit"]
    assert [(a["actor"], a["action"], a["target"]) for a in audit] == [
        ("eddie", "unalias", ADULT),
        ("eddie", "promote", ADULT),
    ]
    assert audit[1]["details"] == {"alias": "staging", "version": 2, "previous": None}
    with client(server, "otto") as c:  # another project's admin sees none of it
        other = c.get("/v1/projects/other/audit").json()["audit"]
    assert not [a for a in other if a["target"].startswith("default.")]


# --- many models: alias moves under load ---


def test_alias_move_during_load_fails_no_request(server):
    registry = Registry(
        server["root"] / "registry" / "registry.db", server["root"] / "registry" / "models"
    )
    row = records(1)[0]
    seen, failures, stop = [], [], threading.Event()

    def hammer():
        with client(server, "vera") as c:
            while not stop.is_set():
                r = c.post(f"/v1/models/{ADULT}/predict?alias=production", json=row)
                if r.status_code != 200:
                    failures.append(r.text)
                else:
                    seen.append(r.json()["version"])

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for version in (2, 1, 2, 1, 2):
            time.sleep(0.5)
            registry.set_alias(ADULT, "production", version)
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not failures
    assert {1, 2} <= set(seen) and seen[-1] == 2
    registry.set_alias(ADULT, "production", 1)


def local_cache(server, *overrides: str, metrics=None):
    """A model cache as the server builds one, in this process, over the world's registry."""
    from automl.config import compose_config
    from automl.serving.models import ModelCache

    cfg = compose_config(
        "automl.conf.apps", "serve", [f"paths.output_dir={server['root']}", *overrides]
    )
    registry = Registry(cfg.registry.uri, cfg.registry.store)
    return ModelCache(registry, cfg.cache, cfg.fast_path, cfg.compiled, cfg.contributions, metrics)


def sample(metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_lru_cache_drops_the_oldest_model_and_in_flight_objects_keep_working(server):
    from automl.serving.metrics import Metrics

    metrics = Metrics([0.1])
    cache = local_cache(server, "cache.size=1", metrics=metrics)
    first = cache.get(ADULT, 1)
    cache.get(IRIS, cache.resolve(IRIS)[1])
    assert cache.cached() == [(IRIS, 1)]
    assert first.score_fast(records(1)).shape == (1, 2)  # still usable after eviction
    assert cache.resolve(f"{ADULT}@production") == (ADULT, 1)
    iris = cache.get(IRIS, 1)
    assert cache.memory == iris.memory and cache.usage() == [(IRIS, 1, iris.memory)]
    assert sample(metrics, "automl_model_cache_evictions_total", bound="size") == 1
    assert sample(metrics, "automl_model_cache_lookups_total", result="miss") == 2
    assert sample(metrics, "automl_model_cache_lookups_total", result="hit") == 1
    assert sample(metrics, "automl_model_cache_models") == 1


def test_cache_memory_bound_drops_the_least_recently_used_models(server):
    from automl.serving.metrics import Metrics
    from automl.serving.models import MB

    sizes = local_cache(server, "cache.max_memory_mb=null")
    adult, iris = sizes.get(ADULT, 1).memory, sizes.get(IRIS, 1).memory
    assert adult > 10 * iris > 0
    bound = 2 * adult + iris // 2  # two adults fit, two adults and iris do not
    metrics = Metrics([0.1])
    cache = local_cache(server, f"cache.max_memory_mb={bound / MB}", metrics=metrics)
    cache.get(ADULT, 1)
    cache.get(IRIS, 1)
    cache.get(ADULT, 1)  # now iris is the least recently used
    cache.get(ADULT, 2)
    assert cache.cached() == [(ADULT, 1), (ADULT, 2)]
    cache.get(IRIS, 1)
    assert cache.cached() == [(ADULT, 2), (IRIS, 1)]
    assert cache.memory == sum(size for *_, size in cache.usage()) <= bound
    assert sample(metrics, "automl_model_cache_evictions_total", bound="memory") == 2
    assert sample(metrics, "automl_model_cache_evictions_total", bound="size") == 0
    assert sample(metrics, "automl_model_cache_bytes") == cache.memory
    assert sample(metrics, "automl_model_cache_models") == 2


def test_cache_memory_bound_must_be_positive_or_null(tmp_path):
    from automl.apps.serve import check
    from automl.config import compose_config
    from automl.errors import ConfigError

    def cfg(bound: str):
        overrides = [f"paths.output_dir={tmp_path}", f"cache.max_memory_mb={bound}"]
        return compose_config("automl.conf.apps", "serve", overrides)

    check(cfg("null"))
    check(cfg("0.5"))
    with pytest.raises(ConfigError, match="cache.max_memory_mb must be positive"):
        check(cfg("0"))


RSS_GROWTH = """
import gc, json, sys
from automl.bundle.registry import Registry
from automl.config import compose_config
from automl.serving.models import ModelCache

def rss():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS"))

root, name, version, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
cfg = compose_config("automl.conf.apps", "serve", [f"paths.output_dir={root}"])
cache = ModelCache(Registry.at(cfg.registry), cfg.cache, cfg.fast_path, cfg.compiled,
                   cfg.contributions)
cache.load(name, version)  # libraries imported, their one-time memory taken
gc.collect()
before = rss()
kept = [cache.load(name, version) for _ in range(n)]
gc.collect()
print(json.dumps({"estimate": kept[0].memory, "rss": (rss() - before) / n}))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RSS from /proc")
@pytest.mark.parametrize("name, copies", [(ADULT, 8), (IRIS, 30)])
def test_cache_memory_estimate_is_within_a_factor_of_two_of_rss_growth(server, name, copies):
    """Copies of one model loaded in a fresh process: the RSS each adds against the
    estimate the cache keeps (LightGBM, linear)."""
    done = subprocess.run(
        [sys.executable, "-c", RSS_GROWTH, str(server["root"]), name, "1", str(copies)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    print(name, found)
    assert 0.5 <= found["estimate"] / found["rss"] <= 2.0, found


def test_cache_memory_bound_reloads_and_serves_correct_predictions(server):
    """A server whose memory bound holds iris but not adult: every switch between them
    reloads, adult is served alone with a warning, the answers stay the pipeline's, and
    /metrics and /health/ready report the cache's memory."""
    from sklearn.datasets import load_iris

    from automl.serving.models import MB

    iris = local_cache(server, "cache.max_memory_mb=null").get(IRIS, 1).memory
    root = server["root"]
    overrides = [
        f"paths.output_dir={root}",
        f"hydra.run.dir={root}/serve-bounded",
        f"cache.max_memory_mb={2 * iris / MB}",
        "prediction_log.enabled=false",
        "ui.enabled=false",
    ]
    registry = Registry(root / "registry" / "registry.db", root / "registry" / "models")
    flowers = load_iris(as_frame=True).data.iloc[[0, 60, 120]]
    iris_rows = flowers.to_dict("records")
    expected_iris = load_model(f"{IRIS}/1", registry).predict_proba(flowers)
    frame = adult_test_frame(20)
    expected_adult = expected_proba(1, frame, root)
    log_path = root / "serve-bounded.log"
    with serve_process(overrides, log_path) as (url, _):
        bounded = {**server, "url": url}
        with client(bounded, "boss") as c:
            for _ in range(3):
                adult = c.post(f"/v1/models/{ADULT}/predict?version=1", json=records(20))
                assert adult.status_code == 200, adult.text
                got = [p[">50K"] for p in adult.json()["probabilities"]]
                assert np.allclose(got, expected_adult, rtol=0, atol=1e-12)
                flower = c.post(f"/v1/models/{IRIS}/predict", json=iris_rows)
                assert flower.status_code == 200, flower.text
                got = pd.DataFrame(flower.json()["probabilities"])[expected_iris.columns]
                assert np.allclose(got.to_numpy(), expected_iris.to_numpy(), rtol=0, atol=1e-12)
            ready = c.get("/health/ready").json()
            text = c.get("/metrics").text
    cache = ready["cache"]
    assert ready["models"] == [f"{IRIS}/1"] and cache["models"] == 1
    assert cache["max_memory_mb"] == pytest.approx(2 * iris / MB)
    assert 0 < cache["memory_mb"] == cache["model_memory_mb"][f"{IRIS}/1"] <= 2 * iris / MB
    metric = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line.startswith("automl_model_cache")
    }
    assert metric['automl_model_cache_lookups_total{result="miss"}'] == 6
    assert metric['automl_model_cache_evictions_total{bound="memory"}'] == 5
    assert metric["automl_model_cache_models"] == 1
    held = metric["automl_model_cache_bytes"]
    assert held == pytest.approx(cache["memory_mb"] * MB, abs=MB / 1e3)
    assert log_path.read_text().count("it is served alone") == 3


@pytest.mark.slow
def test_many_models_cache_under_concurrency(server):
    """Every endpoint of every visible model, from 8 threads, no 5xx."""
    errors = []

    def run(user):
        with client(server, user) as c:
            for _ in range(20):
                for model in (ADULT, IRIS):
                    for endpoint in ENDPOINTS:
                        r = call(c, endpoint, model)
                        if r.status_code >= 500:
                            errors.append(r.text)

    threads = [threading.Thread(target=run, args=(u,)) for u in ["boss", "ada", "otto", "vera"] * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


# --- fuzzing the OpenAPI schema ---


def test_schemathesis_finds_no_server_error(server):
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_url(f"{server['url']}/openapi.json")
    headers = {"Authorization": f"Bearer {server['keys']['boss']}"}
    failures = []
    examples = int(os.environ.get("AUTOML_FUZZ_EXAMPLES", "12"))
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(
            max_examples=examples,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        @given(case=operation.as_strategy())
        def fuzz(case):
            if "name" in (case.path_parameters or {}):
                case.path_parameters["name"] = ADULT  # reach the model, not just the 403
            response = case.call(base_url=server["url"], headers=headers)
            if response.status_code >= 500:
                failures.append((case.method, case.formatted_path, case.body, response.text))

        fuzz()
    assert not failures, failures[:3]
