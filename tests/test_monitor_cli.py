"""`python -m automl.monitor`: exit codes, the report in a browser, alerts to a real webhook
receiver with a cool-down, and bad inputs (one message, exit 1)."""

from __future__ import annotations

import html
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from browser import chromium_page
from helpers import ADULT_COLUMNS, needs_shared_data, run_cli
from monitor_data import adult_model, adult_run, adult_test
from omegaconf import OmegaConf

from automl.monitoring.alerts import Alerter
from automl.monitoring.drift import check_drift, load_monitoring
from automl.monitoring.drift_report import write_report
from automl.monitoring.profile import build_profile

pytestmark = needs_shared_data


def write_input(path: Path, seed: int = 0, shift: str | None = None, rows: int = 3000) -> Path:
    """Rows of adult's test file (with header and labels) as a user would have them."""
    raw = adult_test().sample(rows, random_state=seed).copy()
    if shift:
        # half a std, in whole units (the contract wants integers)
        raw[shift] = raw[shift] + round(0.5 * adult_model().profile["columns"][shift]["std"])
    {"csv": lambda: raw.to_csv(path, index=False), "parquet": lambda: raw.to_parquet(path)}[
        path.suffix[1:]
    ]()
    return path


def monitor(*args: str):
    return run_cli("automl.monitor", f"model={adult_run()}", *args)


class Receiver(BaseHTTPRequestHandler):
    """Collects POSTed JSON bodies in ``server.received``."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def receiver():
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


# --------------------------------------------------------------------------- exit codes


def test_exit_codes_and_report(tmp_path):
    clean = monitor(
        f"input={write_input(tmp_path / 'same.parquet', seed=1)}", f"output={tmp_path / 'ok'}"
    )
    assert clean.returncode == 0, clean.stderr
    assert "status: ok (exit 0)" in clean.stdout
    report = json.loads((tmp_path / "ok" / "report.json").read_text())
    assert report["status"] == "ok" and report["exit_code"] == 0
    assert report["input"]["rows_read"] == 3000
    assert set(report["performance"]["metrics"]) == {"auc", "accuracy"}  # `income` present

    shifted = write_input(tmp_path / "shifted.csv", seed=2, shift="age")
    warning = monitor(f"input={shifted}", f"output={tmp_path / 'warn'}")
    assert warning.returncode == 2, warning.stderr
    assert "drifted columns (7%): age" in warning.stdout
    assert "[WARNING] ALERT" in warning.stdout  # the default sink: the log

    drift = monitor(
        f"input={shifted}", "set=['drift.share.drift=0.05','exit_codes.drift=7']", "alerts=false"
    )
    assert drift.returncode == 7, drift.stderr
    assert "status: drift (exit 7)" in drift.stdout and "ALERT" not in drift.stdout


@pytest.mark.slow
def test_bad_rows_are_counted_not_fatal(tmp_path):
    raw = adult_test().sample(1000, random_state=3)
    raw.loc[raw.index[:100], "age"] = -5  # breaks the contract (min 0)
    path = tmp_path / "bad.csv"
    raw.to_csv(path, index=False)
    result = monitor(f"input={path}", f"output={tmp_path}", "alerts=false")
    assert result.returncode == 2, result.stderr  # 10 % rejected > 5 %: a warning
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["input"]["rows_rejected"] == 100
    assert report["drift"]["rows"] == 900
    assert "rows:rejected" in report["signals"]
    assert any("age" in reason for reason in report["input"]["reasons"])


def text_file(name: str, text: str):
    """A maker of a file named ``name`` holding ``text`` in a folder."""

    def make(folder: Path) -> Path:
        (folder / name).write_text(text)
        return folder / name

    return make


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "absent.csv", "does not exist"),
        pytest.param(text_file("empty.csv", ""), "is empty", marks=pytest.mark.slow),
        (text_file("cols.csv", "age,sex\n30,Male\n"), "missing required column(s): workclass"),
        pytest.param(
            text_file("header.csv", ",".join(ADULT_COLUMNS) + "\n"),
            "has no rows",
            marks=pytest.mark.slow,
        ),
    ],
)
def test_bad_inputs_give_one_message(tmp_path, make, message):
    result = monitor(f"input={make(tmp_path)}", "alerts=false")
    assert result.returncode == 1
    output = result.stdout + result.stderr
    errors = [line for line in output.splitlines() if line.strip()]
    assert len(errors) == 1 and message in errors[0], output
    assert errors[0].startswith("[ERROR] ")


@pytest.mark.slow
def test_bad_monitoring_config_exits_1(tmp_path):
    path = write_input(tmp_path / "x.csv", rows=200)
    result = monitor(f"input={path}", "monitoring=nope")
    assert result.returncode == 1 and "Could not find 'monitoring/nope'" in result.stderr
    assert "Available options in 'monitoring'" in result.stderr
    result = monitor(f"input={path}", f"monitoring={tmp_path / 'missing.yaml'}")
    assert result.returncode == 1 and "missing.yaml: no such file" in result.stderr
    result = run_cli("automl.monitor", f"model={tmp_path}", f"input={path}")
    assert result.returncode == 1 and "no model bundle" in result.stdout


# --------------------------------------------------------------------------- the report


def test_report_in_a_browser(tmp_path):
    """report.html opens in headless Chromium without console errors or failed requests,
    with one loaded plot per drifted feature."""
    raw = adult_test()[adult_test()["education"] == "Bachelors"]
    path = tmp_path / "bachelors.csv"
    raw.to_csv(path, index=False)
    result = monitor(f"input={path}", f"output={tmp_path / 'out'}", "alerts=false")
    assert result.returncode in (2, 3), result.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    plotted = len(report["drift"]["drifted_columns"]) + bool(
        report["drift"]["prediction"]["drifted"]
    )
    with chromium_page(tmp_path / "profile") as (page, problems):
        page.goto((tmp_path / "out" / "report.html").as_uri(), wait_until="load")
        images = page.eval_on_selector_all(
            "img", "els => els.map(e => [e.alt, e.complete, e.naturalWidth])"
        )
        rows = page.eval_on_selector_all("#columns tr", "els => els.length")
        title = page.title()
    assert not problems, problems
    assert len(images) == plotted >= 3
    assert not [alt for alt, complete, width in images if not complete or width == 0]
    assert any(alt.startswith("education:") for alt, _, _ in images)
    assert rows == 1 + 14 + 1  # header, 14 features, the prediction
    assert title.startswith("Monitoring: ")


SCRIPT = "<script>alert(1)</script>"  # an untrusted column name


def test_report_escapes_column_names(tmp_path):
    """A drifted column named like a script tag, with a category of the same text, is shown
    as text in the page (tables, plot caption, alt text): no script runs, no dialog opens."""
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({SCRIPT: rng.normal(size=2000), "c": rng.choice(["a", "b"], 2000)})
    profile = build_profile(reference, rng.random((2000, 2)), ["x", "y"], bins=20, top=10)
    window = pd.DataFrame({SCRIPT: rng.normal(2, 1, 1000), "c": [SCRIPT] * 1000})
    drift = check_drift(profile, window, load_monitoring())
    assert set(drift["drifted_columns"]) == {SCRIPT, "c"}
    report = {"status": drift["status"], "signals": drift["signals"], "model": SCRIPT}
    _, path = write_report(report | {"drift": drift}, tmp_path, f"Monitoring: {SCRIPT}")
    text = path.read_text(encoding="utf-8")
    assert SCRIPT not in text and html.escape(SCRIPT) in text
    with chromium_page(tmp_path / "profile") as (page, problems):
        page.on("dialog", lambda d: problems.append(f"dialog: {d.message}") or d.dismiss())
        page.goto(path.as_uri(), wait_until="load")
        scripts = page.eval_on_selector_all("script", "els => els.length")
        names = page.eval_on_selector_all(
            "#columns tbody tr td:first-child", "els => els.map(e => e.textContent)"
        )
        alts = page.eval_on_selector_all("img", "els => els.map(e => [e.alt, e.naturalWidth])")
        title = page.title()
    assert not problems, problems
    assert scripts == 0 and title == f"Monitoring: {SCRIPT}"
    assert names == [SCRIPT, "c"]
    assert sorted(alt for alt, _ in alts) == [
        f"{SCRIPT}: reference against current",
        "c: reference against current",
    ]
    assert all(width > 0 for _, width in alts)


# --------------------------------------------------------------------------- alerts


def test_webhook_and_cooldown(receiver, tmp_path):
    """One incident, one alert: a signal that keeps firing is quiet during the cool-down,
    a new signal or a new incident (after recovery) alerts again."""
    url = f"http://127.0.0.1:{receiver.server_port}/hook"
    config = OmegaConf.create(
        {
            "min_status": "warning",
            "cooldown_s": 3600,
            "state": str(tmp_path / "state.json"),
            "sinks": [
                {"_target_": "automl.monitoring.alerts.WebhookSink", "url": url},
                {
                    "_target_": "automl.monitoring.alerts.JsonlSink",
                    "path": str(tmp_path / "alerts.jsonl"),
                },
            ],
        }
    )
    alerter = Alerter(config)
    assert alerter("m", "warning", ["column:age"])["new"] == ["column:age"]
    assert alerter("m", "warning", ["column:age"]) is None  # same incident: cooling down
    assert alerter("other", "warning", ["column:age"]) is not None  # keyed by model
    assert alerter("m", "drift", ["column:age", "prediction"])["new"] == ["prediction"]
    assert alerter("m", "ok", []) is None  # recovered: the state is cleared
    assert alerter("m", "warning", ["column:age"]) is not None  # a new incident
    assert len(receiver.received) == 4
    assert receiver.received[0]["model"] == "m" and receiver.received[0]["signals"] == [
        "column:age"
    ]
    lines = (tmp_path / "alerts.jsonl").read_text().splitlines()
    assert [json.loads(line)["signals"] for line in lines] == [
        r["signals"] for r in receiver.received
    ]
    quiet = OmegaConf.merge(config, {"cooldown_s": 0})
    assert Alerter(quiet)("m", "warning", ["column:age"]) is not None  # no cool-down


def test_cli_alerts_once_per_incident(receiver, tmp_path):
    url = f"http://127.0.0.1:{receiver.server_port}/hook"
    own = tmp_path / "alerting.yaml"
    own.write_text(
        "alerts:\n"
        f"  state: {tmp_path / 'state.json'}\n"
        "  sinks:\n"
        f"    - {{_target_: automl.monitoring.alerts.WebhookSink, url: '{url}'}}\n"
    )
    shifted = write_input(tmp_path / "shifted.csv", seed=4, shift="hours-per-week", rows=1500)
    for _ in range(2):
        result = monitor(f"input={shifted}", f"monitoring={own}")
        assert result.returncode == 2, result.stderr
    assert len(receiver.received) == 1
    alert = receiver.received[0]
    assert alert["status"] == "warning" and alert["drifted_columns"] == ["hours-per-week"]
    assert Path(alert["report"]).name == "report.json"
    assert np.isfinite(json.loads(Path(alert["report"]).read_text())["drift"]["share_drifted"])
