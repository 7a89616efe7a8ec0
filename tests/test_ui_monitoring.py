"""The dashboard's monitoring and serving sections: checks over time, a check run from the
form (the API's own check), batch reports served sandboxed, traffic from the server's
metrics, recent predictions with their feedback labels, and who may see what."""

from __future__ import annotations

import json
import re

import pytest
from dashboard_world import ALPHA, BETA, cancer_rows, csrf_of, sign_in, ui_app
from fastapi.testclient import TestClient
from sklearn.datasets import load_wine

from automl.serving.ui.web import timestamp

BASE = "http://127.0.0.1"
SANDBOX = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'"
REPORT_LINK = re.compile(rf'href="(/ui/monitoring/{re.escape(ALPHA)}/reports/[0-9a-f]+)"')


@pytest.fixture(scope="module")
def app(dashboard_world):
    return ui_app(dashboard_world)


def history(world: dict) -> list[dict]:
    """The monitoring history's lines as written (the file the dashboard reads)."""
    path = world["out"] / "monitoring" / "history.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def row_of(html: str, start: str) -> str:
    """The table row that begins with the cell ``start``."""
    found = re.search(rf"<tr>\s*<td>{re.escape(start)}.*?</tr>", html, re.S)
    assert found, f"no row starting with {start!r}"
    return found.group(0)


def test_monitoring_shows_the_online_check_and_the_batch_report(app, dashboard_world):
    lines = [line for line in history(dashboard_world) if line["model"] == ALPHA]
    online = next(line for line in lines if line["source"] == "online")
    batch = next(line for line in lines if line["source"] == "batch")
    with TestClient(app, base_url=BASE) as c:
        sign_in(c, dashboard_world["keys"]["vic"])
        index = c.get("/ui/monitoring")
        assert index.status_code == 200
        row = row_of(index.text, f'<a href="/ui/monitoring/{ALPHA}">')
        assert f"status-{lines[-1]['status']}" in row and timestamp(lines[-1]["time"]) in row
        page = c.get(f"/ui/monitoring/{ALPHA}")
        assert page.status_code == 200
        for line in (online, batch):
            row = row_of(page.text, timestamp(line["time"]))
            assert f"<td>{line['source']}</td>" in row and f"status-{line['status']}" in row
            assert f"{len(line['drifted_columns'])} column(s)" in row
        assert "batch report" in row_of(page.text, timestamp(batch["time"]))
        assert 'data-chart="share-drifted"' in page.text
        assert (
            "Columns that drift most often" in page.text
            and batch["drifted_columns"][0] in page.text
        )
        assert "alpha.breast_cancer/2" in page.text  # the alerter's last alert of the online check


def test_a_check_from_the_form_is_the_api_check_and_is_recorded(app, dashboard_world):
    keys = dashboard_world["keys"]
    with TestClient(app, base_url=BASE) as c:
        sign_in(c, keys["vic"])  # a viewer may check, as on the API
        page = c.get(f"/ui/monitoring/{ALPHA}")
        before = len(history(dashboard_world))
        forged = c.post(f"/ui/monitoring/{ALPHA}/check", data={"ref": ""})
        assert forged.status_code == 403 and "CSRF" in forged.text
        assert len(history(dashboard_world)) == before
        done = c.post(
            f"/ui/monitoring/{ALPHA}/check", data={"csrf": csrf_of(page.text), "ref": "2"}
        )
        assert done.status_code == 200, done.text
        lines = history(dashboard_world)
        assert len(lines) == before + 1
        new = lines[-1]
        assert (new["model"], new["version"], new["source"]) == (ALPHA, 2, "online")
        assert new["drifted_columns"], "the world's predictions were shifted: they drift"
        for n, column in enumerate(new["drifted_columns"][:24], start=1):
            assert f'<h3 id="chart-{n}">{column}</h3>' in done.text
            assert f'data-chart="column-{n}"' in done.text
        assert f"status-{new['status']}" in done.text
        api = c.get(f"/v1/models/{ALPHA}/monitoring?version=2", headers={"X-API-Key": keys["vic"]})
        assert api.status_code == 200
        assert api.json()["drift"]["drifted_columns"] == new["drifted_columns"]
        assert timestamp(new["time"]) in c.get(f"/ui/monitoring/{ALPHA}").text


def test_a_batch_report_opens_sandboxed_and_only_by_its_models_history(app, dashboard_world):
    keys = dashboard_world["keys"]
    batch = next(
        line
        for line in history(dashboard_world)
        if line["model"] == ALPHA and line["source"] == "batch"
    )
    with TestClient(app, base_url=BASE) as c:
        sign_in(c, keys["vic"])
        link = REPORT_LINK.search(c.get(f"/ui/monitoring/{ALPHA}").text).group(1)
        report = c.get(link)
        assert report.status_code == 200
        assert report.headers["content-security-policy"] == SANDBOX
        with open(f"{batch['report']}/report.html", encoding="utf-8") as fh:
            assert report.text == fh.read()
        for made_up in ("0123456789abcdef", "..%2F..%2Fserving", "report.html"):
            missing = c.get(f"/ui/monitoring/{ALPHA}/reports/{made_up}")
            assert missing.status_code == 404, made_up
            assert "sandbox" not in missing.headers["content-security-policy"]
    with TestClient(app, base_url=BASE) as c:
        sign_in(c, keys["root"])  # sees every project: the id is still not beta's report
        assert c.get(link.replace(ALPHA, BETA)).status_code == 404
    with TestClient(app, base_url=BASE) as c:
        sign_in(c, keys["bea"])
        assert c.get(link).status_code == 403


def test_serving_shows_this_servers_traffic_and_recent_predictions_with_labels(dashboard_world):
    keys = dashboard_world["keys"]
    records = cancer_rows(3).drop(columns="diagnosis").to_dict("records")
    with TestClient(ui_app(dashboard_world), base_url=BASE) as c:  # metrics of its own
        for _ in range(2):
            sent = c.post(
                f"/v1/models/{ALPHA}/predict", json=records, headers={"X-API-Key": keys["eve"]}
            )
            assert sent.status_code == 200, sent.text
        rid = sent.json()["request_id"]
        label = {"request_id": rid, "row": 0, "label": "benign"}
        given = c.post(
            f"/v1/models/{ALPHA}/feedback",
            json={"feedback": [label]},
            headers={"X-API-Key": keys["eve"]},
        )
        assert given.status_code == 200, given.text
        wine = load_wine(as_frame=True).frame.drop(columns="target").head(2)
        other = c.post(
            f"/v1/models/{BETA}/predict",
            json=wine.to_dict("records"),
            headers={"X-API-Key": keys["bea"]},
        )
        assert other.status_code == 200
        sign_in(c, keys["vic"])
        page = c.get("/ui/serving")
        assert page.status_code == 200
        row = row_of(page.text, f'<a href="/ui/serving/{ALPHA}">')
        cells = re.findall(r'<td class="num">([^<]*)</td>', row)
        assert cells[:3] == ["2", "2", "0"]  # version 2: 2 requests, no error
        assert cells[4] == "6"  # rows scored
        assert "beta" not in page.text and "wine" not in page.text
        model = c.get(f"/ui/serving/{ALPHA}")
        assert model.status_code == 200
        rows = re.findall(rf"<tr>(?:(?!</tr>).)*<code>{rid}</code>.*?</tr>", model.text, re.S)
        assert len(rows) == 3
        assert sum("<td>benign</td>" in r for r in rows) == 1
        assert sum("none yet" in r for r in rows) == 2
        assert "beta" not in model.text


def test_other_projects_get_403_and_never_see_each_other(app, dashboard_world):
    keys = dashboard_world["keys"]
    with TestClient(app, base_url=BASE) as c:
        sign_in(c, keys["bea"])
        page = c.get("/ui/monitoring")
        assert page.status_code == 200 and "alpha" not in page.text
        assert "alpha" not in c.get("/ui/serving").text
        paths = ["/ui/monitoring/{}", "/ui/serving/{}", "/ui/monitoring/{}/reports/0"]
        for path in paths:
            foreign = c.get(path.format(ALPHA))
            unknown = c.get(path.format("alpha.nothing"))
            assert foreign.status_code == unknown.status_code == 403, path
            assert foreign.text.replace(ALPHA, "alpha.nothing") == unknown.text
        before = len(history(dashboard_world))
        token = csrf_of(page.text)
        refused = c.post(f"/ui/monitoring/{ALPHA}/check", data={"csrf": token, "ref": ""})
        assert refused.status_code == 403 and len(history(dashboard_world)) == before
    with TestClient(app, base_url=BASE) as c:
        sign_in(c, keys["vic"])
        assert c.get("/ui/monitoring/alpha.nothing").status_code == 404
        for path in ("/ui/monitoring", f"/ui/monitoring/{ALPHA}", "/ui/serving"):
            page = c.get(path)
            assert page.status_code == 200 and "beta" not in page.text, path
