"""Acceptance for "no 5xx anywhere": every served model family x feature set, fuzzed.

One module-wide world: lgbm, xgb, rf and linear, each trained on adult with two feature
sets (default and robust), plus two regressors on abalone (whose float columns have no
upper bound, so extreme values reach the model); every pair is its own registered model
(``fz_<family>_<features>.<dataset>``), all served by one real ``python -m automl.serve``.

* ``test_extreme_values``: records from real rows with each number column (and all at
  once) set to +-1e308, 1e-308, -0.0, huge integers..., each text column to a 100 kB
  string, unicode, an empty string...; bodies nested 10,000 deep, lists and dicts as
  values, NaN/Infinity literals, CSV and columnar bodies; on the fast path (one record) and
  the pipeline (50 rows), with and without ``?contributions=true``. No 5xx; every 200
  is strict JSON with finite numbers and one prediction per record.
* ``test_hypothesis_records``: records shaped like the model's input schema with values
  drawn by Hypothesis (any finite float, huge integers, any text).
* ``test_monitoring_after_fuzzing``: the monitoring report over the prediction log those
  requests left behind.
* ``test_schemathesis``: every operation of /openapi.json, with the path's model (and its
  project) substituted, as an admin of every project.
* ``test_server_survived``: the server is still up and logged no unhandled exception.

The default run (``-m "not slow"``) fuzzes a representative subset, ``DEFAULT_RUN``: a LightGBM
classifier and a linear regressor; every operation with Schemathesis, and a quick
pass of extreme values (the issue's values in each column in turn, the others in all
columns at once, each body with or without contributions in turn). ``-m slow`` runs the
other models, and the full pass (every value in every column, every body both ways) for
all. ``AUTOML_FUZZ_EXAMPLES`` (default 10) sets Hypothesis' examples per operation
(Schemathesis) and, times 5 (quick) or 20 (full), the records drawn per model.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from helpers import (
    FAST,
    ROOT,
    SHARED_DATA,
    adult_test_rows,
    compose_train,
    serve_process,
    set_up_team,
)
from omegaconf import OmegaConf

EXAMPLES = int(os.environ.get("AUTOML_FUZZ_EXAMPLES", "10"))

# (family, feature set, data set): the overrides that keep each training cheap
FAMILIES = {
    "lgbm": ["model.classifier.n_estimators=40", "model.regressor.n_estimators=40"],
    "xgb": [
        "model.classifier.n_estimators=30",
        "model.classifier.max_depth=4",
        "model.regressor.n_estimators=30",
        "model.regressor.max_depth=4",
    ],
    "rf": [
        "model.classifier.n_estimators=10",
        "model.classifier.min_samples_leaf=5",
        "model.regressor.n_estimators=10",
        "model.regressor.min_samples_leaf=5",
    ],
    "linear": [],
}
FEATURE_SETS = ("default", "robust")
# one thread per fit (two cores shared with the rest: threads fight), one holdout split
CHEAP = [*FAST, "n_jobs=1", "search.holdout_above=1000"]
PAIRS = [(f, s, "adult") for f in FAMILIES for s in FEATURE_SETS] + [
    ("linear", "default", "abalone"),
    ("lgbm", "robust", "abalone"),
]
PROJECTS = sorted({f"fz_{family}_{features}" for family, features, _ in PAIRS})


def model_name(family: str, features: str, dataset: str) -> str:
    return f"fz_{family}_{features}.{dataset}"


MODELS = [model_name(*pair) for pair in PAIRS]


def dataset_of(name: str) -> str:
    return name.split(".", 1)[1]


# the default run: a LightGBM classifier and a linear regressor; the rest (xgb, rf, the
# robust feature set, and every model in full) is -m slow
DEFAULT_RUN = {
    "fz_lgbm_default.adult",
    "fz_linear_default.abalone",
}


def modes(names: list[str], default: set[str]) -> list:
    """(name, False) for the models of the default run; (name, True), slow, for each."""
    quick = [pytest.param(n, False, id=f"{n}-quick") for n in names if n in default]
    return quick + [pytest.param(n, True, id=f"{n}-full", marks=pytest.mark.slow) for n in names]


def subset(names: list[str], default: set[str]) -> list:
    return [pytest.param(n, id=n, marks=() if n in default else pytest.mark.slow) for n in names]


@functools.cache
def rows_json(dataset: str) -> str:
    if dataset == "adult":
        frame = adult_test_rows().head(100)
    else:
        names = list(OmegaConf.load(ROOT / "conf" / "dataset" / "abalone.yaml").source.reader.names)
        frame = pd.read_csv(SHARED_DATA / "abalone.csv", header=None, names=names)
        frame = frame.drop(columns="rings").head(100)
    return frame.to_json(orient="records", double_precision=15)


def real_rows(dataset: str, n: int) -> list[dict]:
    """``n`` real rows of the data set, without the target, as a client sends them."""
    return json.loads(rows_json(dataset))[:n]  # plain Python values, a fresh copy


# --- the world: trained models, auth, one server ---


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (adult and abalone needed)")
    from automl.services.training import train

    root = tmp_path_factory.mktemp("fuzz")
    started = time.perf_counter()
    for family, features, dataset in PAIRS:
        overrides = [
            f"dataset={dataset}",
            f"model={family}",
            f"features={features}",
            f"project=fz_{family}_{features}",
            *FAMILIES[family],
            *CHEAP,
            f"paths.output_dir={root}",
        ]
        train(compose_train(overrides), root / "runs" / f"{family}_{features}_{dataset}")
    print(f"trained {len(PAIRS)} models in {time.perf_counter() - started:.1f} s")
    team = {"projects": PROJECTS, "users": {"fuzz": {"roles": dict.fromkeys(PROJECTS, "admin")}}}
    key = set_up_team(root, team)["keys"]["fuzz"]
    return {"root": root, "key": key}


@pytest.fixture(scope="module")
def server(world):
    """``python -m automl.serve`` over the registry (default limits), stopped afterwards."""
    root = world["root"]
    overrides = [
        f"paths.output_dir={root}",
        f"hydra.run.dir={root}/serve",
        f"auth.url=sqlite:///{root}/serving/auth.db",
        "prediction_log.flush_seconds=0.2",
    ]
    with serve_process(overrides, root / "server.log") as (url, proc):
        yield {**world, "url": url, "proc": proc, "log": root / "server.log"}


def metadata_of(server, name: str) -> dict:
    """The model's metadata (its input schema): a failure of the test when not answered."""
    with client(server) as c:
        response = c.get(f"/v1/models/{name}/metadata")
    assert response.status_code == 200, (name, response.status_code, response.text)
    return response.json()


def client(server) -> httpx.Client:
    headers = {"Authorization": f"Bearer {server['key']}"}
    return httpx.Client(base_url=server["url"], headers=headers, timeout=120)


# --- checking answers ---


def no_constant(text: str) -> None:
    raise ValueError(f"non-finite JSON literal {text!r} in a response")


def finite_numbers(value: Any, where: str = "$") -> list[str]:
    """The paths of the numbers in ``value`` that are not finite."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in finite_numbers(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in finite_numbers(v, f"{where}[{i}]")]
    if isinstance(value, float) and not math.isfinite(value):
        return [where]
    return []


class Checker:
    """Sends requests and collects every answer that breaks the rules (all, not the first)."""

    def __init__(self, server, name: str, meta: dict, full: bool = True) -> None:
        self.server, self.name, self.meta, self.full = server, name, meta, full
        self.turn = 0
        self.client = client(server)
        self.failures: list[str] = []
        self.statuses: dict[int, int] = {}
        self.sent = 0

    def post(self, case: str, rows: int | None, params=None, **kwargs) -> httpx.Response | None:
        """POST to predict; ``rows``: records in the body (None: not a valid body)."""
        path = f"/v1/models/{self.name}/predict"
        try:
            response = self.client.post(path, params=params, **kwargs)
        except httpx.HTTPError as exc:  # a hang or a dropped connection is a failure too
            self.failures.append(f"{case} {params}: no answer ({exc!r})")
            self.client.close()
            self.client = client(self.server)
            return None
        self.sent += 1
        status = response.status_code
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status >= 500:
            self.failures.append(f"{case} {params}: {status} {response.text[:300]}")
            self.client.close()  # the server may drop the connection after a 500
            self.client = client(self.server)
        elif status == 200:
            self.check_ok(case, params, response, rows)
        return response

    def check_ok(self, case, params, response, rows) -> None:
        try:
            body = json.loads(response.text, parse_constant=no_constant)
        except ValueError as exc:
            self.failures.append(f"{case} {params}: 200 but not strict JSON ({exc})")
            return
        bad = finite_numbers(body)
        if bad:
            self.failures.append(f"{case} {params}: 200 with non-finite numbers at {bad[:5]}")
        if rows is None or len(body.get("predictions", [])) != rows:
            self.failures.append(f"{case} {params}: 200 for {rows} record(s): {body}"[:400])
        if params and params.get("contributions") and len(body.get("contributions", [])) != rows:
            self.failures.append(f"{case} {params}: 200 without contributions per record")

    def params(self) -> list[dict | None]:
        """Query parameters to send a body with: both (full), else each in turn (a model
        without contributions refuses them before scoring: quick sends it none)."""
        self.turn += 1
        choices = PARAMS if self.meta.get("contributions") else [None]
        return PARAMS if self.full else [choices[self.turn % len(choices)]]

    def raw(self, case: str, rows: int | None, body: bytes | str, headers=None) -> None:
        for params in self.params():
            self.post(case, rows, params, content=body, headers=headers or JSON)

    def record(self, case: str, record: dict) -> None:
        """One record (the fast path) and the same among 49 real rows (the pipeline);
        quick: one with contributions, the other without, swapped from call to call."""
        batch = real_rows(dataset_of(self.name), 50)
        batch[7] = record
        self.raw(f"{case} [one]", 1, dumps(record))
        self.raw(f"{case} [50]", 50, dumps(batch))
        self.turn += 1

    def close(self) -> None:
        self.client.close()
        assert self.server["proc"].poll() is None, "the server died"
        assert not self.failures, (
            f"{len(self.failures)} of {self.sent} requests to {self.name} failed "
            f"(statuses {self.statuses}):\n" + "\n".join(self.failures[:40])
        )


JSON = {"Content-Type": "application/json"}
CSV = {"Content-Type": "text/csv"}
PARAMS = [None, {"contributions": "true"}]


def dumps(value: Any) -> bytes:
    """JSON as a client may send it: NaN/Infinity literals, lone surrogates escaped."""
    return json.dumps(value, allow_nan=True).encode()


EXTREME_NUMBERS = [
    1e308,
    -1e308,
    1e-308,
    -1e-308,
    -0.0,
    5e-324,
    1.7976931348623157e308,
    3.5e38,  # beyond float32
    -3.5e38,
    2**53 + 1,
    2**63,  # beyond int64
    -(2**63) - 1,
    2**64,
    10**308,  # an integer literal of 309 digits
    -(10**308),
    10**400,  # beyond every float
    True,
    "1e308",
    "",
    "\ud800",  # a lone surrogate (valid JSON escape, not encodable as UTF-8)
    None,
]
EXTREME_TEXTS = [
    "x" * 100_000,
    "é" * 50_000,
    "ünïcødé ☃ 🚀 中文 \u202e",
    "",
    " ",
    "\x00",
    "\ud800",  # a lone surrogate (valid JSON escape, not encodable as UTF-8)
    "?",
    "NaN",
    "1e308",
    1e308,
    -0.0,
    None,
]
EACH_NUMBER = [1e308, -1e308, 1e-308, -0.0]  # each number column in turn (quick)
EACH_TEXT = ["x" * 100_000, "ünïcødé ☃ 🚀 中文 \u202e", ""]  # each text column in turn (quick)
RAW_LITERALS = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1" + "0" * 5000]


def deep(depth: int, kind: str) -> str:
    return "[" * depth + "]" * depth if kind == "list" else '{"a":' * depth + "1" + "}" * depth


def with_raw(record: dict, column: str, literal: str) -> bytes:
    """The record as JSON with ``column``'s value replaced by a literal (any text)."""
    marker = "__automl_fuzz_marker__"
    return dumps({**record, column: marker}).replace(f'"{marker}"'.encode(), literal.encode())


@pytest.mark.parametrize("name, full", modes(MODELS, DEFAULT_RUN))
def test_extreme_values(server, name, full):
    """Extreme values in every column, odd JSON, CSV and columnar bodies: never a 5xx, and
    every 200 is strict JSON with finite numbers (quick: the issue's list of values each
    column in turn, the rest all columns at once; full: everything in every column)."""
    meta = metadata_of(server, name)
    properties = meta["input_schema"]["properties"]
    numbers = [c for c, p in properties.items() if "number" in p["type"]]
    texts = [c for c, p in properties.items() if "string" in p["type"]]
    assert numbers and texts, properties
    row = real_rows(dataset_of(name), 1)[0]
    with client(server) as c:  # real rows: one takes the fast path, 50 the pipeline
        one = c.post(f"/v1/models/{name}/predict", json=row)
        many = c.post(f"/v1/models/{name}/predict", json=real_rows(dataset_of(name), 50))
        explained = c.post(f"/v1/models/{name}/predict?contributions=true", json=row)
    assert one.status_code == 200 and many.status_code == 200, (one.text, many.text)
    assert explained.status_code == (200 if meta["contributions"] else 422), explained.text
    assert many.json()["path"] == "pipeline"
    assert one.json()["path"] == ("fast" if meta["fast_path"] == "compiled" else "pipeline")
    check = Checker(server, name, meta, full)
    for value in EXTREME_NUMBERS:
        if full or value in EACH_NUMBER:
            for column in numbers:
                check.record(f"{column}={value!r:.40}", {**row, column: value})
        check.record(f"every number={value!r:.40}", {**row, **dict.fromkeys(numbers, value)})
    mixed = {c: (1e308 if i % 2 else -1e308) for i, c in enumerate(numbers)}
    check.record("numbers +-1e308 alternating", {**row, **mixed})
    for value in EXTREME_TEXTS:
        if full or value in EACH_TEXT:
            for column in texts:
                check.record(f"{column}={value!r:.40}", {**row, column: value})
        check.record(f"every text={value!r:.40}", {**row, **dict.fromkeys(texts, value)})
    everything = {**row, **dict.fromkeys(numbers, 1e308), **dict.fromkeys(texts, "x" * 100_000)}
    check.record("every number 1e308, every text 100 kB", everything)
    for column in [numbers[0], texts[0], "not_a_column"]:
        check.record(f"{column}=list", {**row, column: [1, 2, 3]})
        check.record(f"{column}=dict", {**row, column: {"a": {"b": 1e308}}})
        check.record(f"{column}=empty dict", {**row, column: {}})
    check.record("100 kB column name", {**row, "k" * 100_000: 1})
    check.record("empty record", {})
    # NaN/Infinity literals, floats and integers beyond range, as the body's text
    for literal in RAW_LITERALS:
        for column in numbers + texts if full else [numbers[-1], texts[-1]]:
            check.raw(f"{column}: {literal[:20]}", 1, with_raw(row, column, literal))
        every = dumps(dict.fromkeys(row, "__m__")).replace(b'"__m__"', literal.encode())
        check.raw(f"every column: {literal[:20]}", 1, every)
    # deep JSON: the whole body, a value in a record, an item of a list of records
    for depth in (10_000, 100_000) if full else (10_000,):
        for kind in ("list", "dict"):
            nested = deep(depth, kind)
            check.raw(f"{kind} {depth} deep", None, nested)
            for column in (numbers[0], texts[0], "not_a_column"):
                check.raw(f"{column}: {kind} {depth} deep", None, with_raw(row, column, nested))
            records = "[" + ",".join([dumps(row).decode()] * 3 + [nested]) + "]"
            check.raw(f"records + {kind} {depth} deep", None, records)
    # the columnar form and CSV with the extremes, one row and 50
    for value in (1e308, -1e308, 1e-308, 10**400):
        extreme = {**row, **dict.fromkeys(numbers, value)}
        for n in (1, 50):
            body = dumps({"columns": list(extreme), "data": [list(extreme.values())] * n})
            check.raw(f"columnar {value!r:.10} x{n}", n, body)
    for value in ("1e308", "-1e308", "1e-308", "inf", "nan", "1" + "0" * 400, "y" * 100_000):
        extreme = {**row, **dict.fromkeys(numbers if len(value) < 1000 else texts, value)}
        for n in (1, 50):
            csv = pd.DataFrame([extreme] * n).to_csv(index=False)
            check.raw(f"csv {value:.20} x{n}", n, csv, CSV)
    check.close()


@pytest.mark.parametrize("name, full", modes(MODELS, DEFAULT_RUN))
def test_hypothesis_records(server, name, full):
    """Batches of records with the schema's columns, values drawn by Hypothesis (any
    finite float, integers far beyond any float, any text): the model is reached with
    values no list names."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    meta = metadata_of(server, name)
    properties = meta["input_schema"]["properties"]
    row = real_rows(dataset_of(name), 1)[0]
    number = st.one_of(
        st.floats(allow_nan=False, allow_infinity=False),
        st.integers(min_value=-(10**320), max_value=10**320),
        st.sampled_from([1e308, -1e308, 1e-308, -0.0, 5e-324, 3.5e38]),
    )
    text = st.one_of(st.text(max_size=200), st.sampled_from(["", "x" * 100_000, "\ud800"]))
    anything = st.one_of(number, text, st.booleans(), st.none())
    values = {  # mostly the real value or one of the column's type, so that rows get through
        c: st.one_of(st.just(row[c]), number if "number" in p["type"] else text, anything)
        for c, p in properties.items()
    }
    records = st.lists(st.fixed_dictionaries(values), min_size=1, max_size=30)
    check = Checker(server, name, meta)

    @settings(
        max_examples=EXAMPLES * (20 if full else 5),
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(batch=records, params=st.sampled_from(PARAMS if meta["contributions"] else [None]))
    def fuzz(batch, params):
        check.post(f"{batch!r:.300}", len(batch), params, content=dumps(batch), headers=JSON)

    fuzz()
    check.close()


def within(value: float, spec: dict) -> bool:
    return spec.get("minimum", -math.inf) <= value <= spec.get("maximum", math.inf)


@pytest.mark.parametrize("name", subset(MODELS, DEFAULT_RUN))
def test_monitoring_after_fuzzing(server, name):
    """The online monitoring report over a prediction log that holds extreme values."""
    meta = metadata_of(server, name)
    properties = meta["input_schema"]["properties"]
    check = Checker(server, name, meta)
    check.raw("real rows", 50, dumps(real_rows(dataset_of(name), 50)))
    for value in (1e308, 1e-308, 3.5e38, -1e308, -3.5e38):  # in the columns that allow it
        columns = [c for c, p in properties.items() if "number" in p["type"] and within(value, p)]
        batch = real_rows(dataset_of(name), 50)
        for record in batch[::2]:
            record.update(dict.fromkeys(columns, value))
        check.raw(f"log {value} in {columns}", 50, dumps(batch))
    time.sleep(0.5)  # prediction_log.flush_seconds
    with client(server) as c:
        for params in (None, {"version": 1}):
            response = c.get(f"/v1/models/{name}/monitoring", params=params)
            assert response.status_code < 500, (name, params, response.text[:3000])
            if response.status_code == 200:
                body = json.loads(response.text, parse_constant=no_constant)
                assert body["rows"] > 0, body
    check.close()


# --- schemathesis: every operation of the API, per model ---


@pytest.fixture(scope="module")
def schema(server):
    import schemathesis

    return schemathesis.openapi.from_url(f"{server['url']}/openapi.json")


def body(case) -> str:
    """The case's body, short, for the failure message."""
    sent = case.body if isinstance(case.body, dict | list | str | bytes) else None
    return repr(sent)[:300]


@pytest.mark.parametrize("name", subset(MODELS, DEFAULT_RUN))
def test_schemathesis(server, schema, name):
    from hypothesis import HealthCheck, given, settings

    headers = {"Authorization": f"Bearer {server['key']}"}
    substitutes = {"name": name, "project": name.split(".")[0]}
    failures, calls, operations = [], [0], []
    for result in schema.get_all_operations():
        operation = result.ok()
        operations.append(f"{operation.method.upper()} {operation.path}")

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        @given(case=operation.as_strategy())
        def fuzz(case):
            for key, value in substitutes.items():  # reach the model, not just the 404
                if key in (case.path_parameters or {}):
                    case.path_parameters[key] = value
            try:
                response = case.call(base_url=server["url"], headers=headers, timeout=120)
            except Exception as exc:  # noqa: BLE001 (a hang or a dropped connection)
                failures.append((case.method, case.formatted_path, body(case), repr(exc)))
                return
            calls[0] += 1
            if response.status_code >= 500:
                failures.append((case.method, case.formatted_path, body(case), response.text))

        fuzz()
    assert len(operations) >= 10 and "POST /v1/models/{name}/predict" in operations, operations
    assert server["proc"].poll() is None, "the server died"
    assert not failures, f"{len(failures)} of {calls[0]} calls failed: {failures[:5]}"


@pytest.mark.parametrize("part", ["default", pytest.param("slow", marks=pytest.mark.slow)])
def test_server_survived(server, part):
    """Last: the server still answers, and its log has no unhandled exception."""
    with client(server) as c:
        assert c.get("/health/live").status_code == 200
        ready = c.get("/health/ready").json()
    assert ready["status"] == "ready"
    assert server["proc"].poll() is None
    text = Path(server["log"]).read_text(errors="replace")
    assert "Traceback" not in text and "Exception in ASGI application" not in text, text[-5000:]
