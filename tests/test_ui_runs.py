"""The dashboard's runs pages through the real app: the runs table (filter, sort, page),
project isolation, runs side by side, one run with its tables and plots, and ids or plot
names from outside the index (all 404, like a run of another project)."""

from __future__ import annotations

import json
import re
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest
from dashboard_world import ALPHA, sign_in, ui_app
from fastapi.testclient import TestClient
from test_runs_index import clone, real_run

from automl.config import compose_config
from automl.serving.app import create_app
from automl.serving.ui.web import number

BASE = "http://127.0.0.1"
PICKED = re.compile(r'name="run" value="([^"]+)"')


@pytest.fixture(scope="module")
def app(dashboard_world):
    return ui_app(dashboard_world)


@pytest.fixture(scope="module")
def runs(dashboard_world) -> dict[str, str]:
    """Run ids by what they are: lgbm, rf (alpha, registered), linear, hist_gb (alpha
    sweep, not registered), wine (beta)."""
    out = dashboard_world["out"]
    found = {}
    configs = [
        *out.glob("runs/*/*/.hydra/config.yaml"),
        *out.glob("sweeps/*/*/*/.hydra/config.yaml"),
    ]
    for config in configs:
        folder = config.parent.parent
        name = folder.name.split("_", 1)[1]
        key = "wine" if name.startswith("wine") else name.removeprefix("breast_cancer_")
        found[key] = folder.relative_to(out).as_posix()
    assert sorted(found) == ["hist_gb", "lgbm", "linear", "rf", "wine"], found
    return found


@contextmanager
def signed_in(app, world: dict, user: str):
    with TestClient(app, base_url=BASE) as client:
        yield sign_in(client, world["keys"][user])


def listed(html: str) -> list[str]:
    """The run ids of a runs table, in order (its compare checkboxes)."""
    return PICKED.findall(html)


def options(html: str, select_id: str) -> list[str]:
    found = re.search(rf'<select id="{select_id}"[^>]*>(.*?)</select>', html, re.S)
    assert found, select_id
    return [v for v in re.findall(r'<option value="([^"]*)"', found.group(1)) if v]


def main_text(html: str) -> str:
    return re.search(r"<main.*?</main>", html, re.S).group(0)


def metrics_of(world: dict, run_id: str) -> dict[str, float]:
    return json.loads((world["out"] / run_id / "metrics.json").read_text())


def test_signed_out_visitors_are_sent_to_sign_in(app, runs):
    lgbm = runs["lgbm"]
    with TestClient(app, base_url=BASE) as c:
        for path in (
            "/ui/runs",
            f"/ui/runs/{lgbm}",
            f"/ui/runs/{lgbm}/plots/roc.png",
            f"/ui/runs/compare?run={lgbm}&run={runs['rf']}",
        ):
            answer = c.get(path, follow_redirects=False)
            assert answer.status_code == 303, path
            assert answer.headers["location"].startswith("/ui/sign-in?next=/ui/runs")
            assert b"PNG" not in answer.content and "lgbm" not in answer.text


def test_each_user_lists_only_their_projects_runs(app, dashboard_world, runs):
    alpha = sorted(runs[k] for k in ("lgbm", "rf", "linear", "hist_gb"))
    with signed_in(app, dashboard_world, "vic") as c:
        page = c.get("/ui/runs")
        assert page.status_code == 200
        assert sorted(listed(page.text)) == alpha and "4 run(s)" in page.text
        assert "beta" not in page.text and "wine" not in page.text
        assert options(page.text, "f-project") == ["alpha"]
        assert options(page.text, "f-dataset") == ["breast_cancer"]
        assert options(page.text, "f-family") == ["hist_gb", "lgbm", "linear", "rf"]
        for query in ("project=beta", "text=wine", "dataset=wine", "project=beta&dataset=wine"):
            other = c.get(f"/ui/runs?{query}")  # the answer to a foreign project: nothing
            assert other.status_code == 200 and listed(other.text) == [], query
            assert "0 run(s)" in other.text and runs["wine"] not in other.text
            assert "wine" not in options(other.text, "f-dataset")
            assert options(other.text, "f-project") == ["alpha"]
    with signed_in(app, dashboard_world, "bea") as c:
        page = c.get("/ui/runs")
        assert listed(page.text) == [runs["wine"]] and "1 run(s)" in page.text
        assert "alpha" not in page.text and "breast_cancer" not in page.text
        assert options(page.text, "f-dataset") == ["wine"]
        assert listed(c.get("/ui/runs?project=alpha").text) == []
    with signed_in(app, dashboard_world, "root") as c:  # a site admin sees every run
        page = c.get("/ui/runs")
        assert sorted(listed(page.text)) == sorted(runs.values())
        assert options(page.text, "f-project") == ["alpha", "beta"]


def test_filter_sort_and_page(dashboard_world, runs):
    world = dashboard_world
    app = ui_app(world, "ui.page_size=2")
    alpha = [runs[k] for k in ("lgbm", "rf", "linear", "hist_gb")]
    with signed_in(app, world, "vic") as c:
        assert listed(c.get("/ui/runs?family=rf").text) == [runs["rf"]]
        plain_form = "/ui/runs?project=&dataset=&family=rf&status=&text="  # empty fields too
        assert listed(c.get(plain_form).text) == [runs["rf"]]
        assert listed(c.get("/ui/runs?text=HIST_GB").text) == [runs["hist_gb"]]
        assert listed(c.get("/ui/runs?status=incomplete").text) == []
        by_auc = sorted(alpha, key=lambda r: (metrics_of(world, r)["auc"], r))
        first = c.get("/ui/runs?sort=auc&descending=false")
        second = c.get("/ui/runs?sort=auc&descending=false&page=2")
        assert listed(first.text) + listed(second.text) == by_auc
        assert "Page 1 of 2" in first.text and "Page 2 of 2" in second.text
        assert re.search(r'href="/ui/runs\?[^"]*page=2[^"]*" rel="next"', first.text)
        header = re.search(
            r'<th scope="col" class="num" aria-sort="ascending">\s*<a[^>]*>auc', first.text
        )
        assert header, "the sorted column says so"
        descending = c.get("/ui/runs?sort=auc&descending=true").text
        best_first = sorted(alpha, key=lambda r: (-metrics_of(world, r)["auc"], r))  # ties: by id
        assert listed(descending) == best_first[:2]
        assert 'aria-sort="descending"' in descending
        # a link in the header sorts by that column, the other way when it is sorted by it
        assert 'href="/ui/runs?sort=auc&amp;descending=true"' in first.text
        assert 'href="/ui/runs?sort=log_loss&amp;descending=true"' in first.text
        newest = listed(c.get("/ui/runs").text) + listed(c.get("/ui/runs?page=2").text)
        assert sorted(newest) == sorted(alpha)
        beyond = c.get("/ui/runs?sort=auc&descending=false&page=99")
        assert listed(beyond.text) == listed(second.text)  # the last page
        nonsense = c.get("/ui/runs?page=x&sort=../../etc&descending=maybe&family=")
        assert nonsense.status_code == 200 and len(listed(nonsense.text)) == 2
        form = c.get("/ui/runs").text
        assert 'hx-get="/ui/runs"' in form and 'hx-select="#runs"' in form
        assert 'method="get" action="/ui/runs"' in form and '<div id="runs">' in form
        assert 'action="/ui/runs/compare"' in form and "Compare selected" in form


def test_compare_shows_metrics_config_diff_and_leaderboards(app, dashboard_world, runs):
    world = dashboard_world
    lgbm, rf = runs["lgbm"], runs["rf"]
    with signed_in(app, world, "vic") as c:
        page = c.get(f"/ui/runs/compare?run={lgbm}&run={rf}")
        assert page.status_code == 200, page.text
        html = page.text
        assert "<code>model.name</code>" in html
        assert "<code>lgbm</code>" in html and "<code>rf</code>" in html
        assert "<code>seed</code>" not in html and "<code>dataset.name</code>" not in html
        aucs = [metrics_of(world, r)["auc"] for r in (lgbm, rf)]
        row = re.search(r'<th scope="row">auc <span.*?</tr>', html, re.S).group(0)
        assert f'<td class="num best">{number(max(aucs))} <span class="badge">(best)</span>' in row
        losses = [metrics_of(world, r)["log_loss"] for r in (lgbm, rf)]
        row = re.search(r'<th scope="row">log_loss <span.*?</tr>', html, re.S).group(0)
        assert "lower is better" in row and f"{number(min(losses))} <span" in row
        assert html.count("Leaderboard of") == 2 and "COMPLETE" in html
        assert f"{ALPHA} v1" in html and f"{ALPHA} v2" in html
        missing = c.get(f"/ui/runs/compare?run={lgbm}&run=runs/nope")
        foreign = c.get(f"/ui/runs/compare?run={lgbm}&run={runs['wine']}")
        assert missing.status_code == foreign.status_code == 404
        assert main_text(missing.text) == main_text(foreign.text)
        assert "wine" not in foreign.text and "beta" not in foreign.text
        assert c.get(f"/ui/runs/compare?run={lgbm}").status_code == 400
        assert c.get(f"/ui/runs/compare?run={lgbm}&run={lgbm}").status_code == 400
        many = "&".join(f"run={lgbm}{'/' * i}" for i in range(11))
        assert c.get(f"/ui/runs/compare?{many}").status_code == 400
        picked = c.get(f"/ui/runs/compare?run={lgbm}&run={runs['linear']}&run={runs['hist_gb']}")
        assert picked.status_code == 200 and "Compare 3 runs" in picked.text


def test_run_page_shows_facts_tables_plots_and_config(app, dashboard_world, runs):
    lgbm = runs["lgbm"]
    with signed_in(app, dashboard_world, "vic") as c:
        page = c.get(f"/ui/runs/{lgbm}")
        assert page.status_code == 200, page.text
        html = page.text
        assert html.count("<h1>") == 1 and "registered as" in html
        assert f'<a href="/ui/models/{ALPHA}">{ALPHA}</a> v1' in html
        for title in ("Metrics", "Leaderboard (search trials)", "Families", "Ensemble", "Plots"):
            assert f"<h2>{title}</h2>" in html, title
        plots = re.findall(r'<img class="plot" src="([^"]+)"', html)
        assert sorted(Path(p).name for p in plots) == [
            "confusion_matrix.png",
            "feature_importance.png",
            "importance_permutation.png",  # held-out permutation importance, every run
            "roc.png",
        ]
        for src in plots:
            image = c.get(src)
            assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
            assert image.headers["content-type"] == "image/png"
            assert image.headers["x-content-type-options"] == "nosniff"
        assert '<pre class="config"' in html and "name: lgbm" in html
        assert "signing_key: &#39;***&#39;" in html  # as training wrote it: redacted
        rf = c.get(f"/ui/runs/{runs['rf']}").text
        assert f"{ALPHA}</a> v2" in rf and "<h2>Plots</h2>" not in rf
        sweep = c.get(f"/ui/runs/{runs['linear']}").text
        assert "not registered" in sweep and "<h2>Leaderboard (search trials)</h2>" in sweep


def test_ids_and_plot_names_outside_the_index_are_404(app, dashboard_world, runs):
    world = dashboard_world
    lgbm, wine = runs["lgbm"], runs["wine"]
    with signed_in(app, world, "vic") as c:
        answers = {}
        for path in (
            f"/ui/runs/{wine}",
            "/ui/runs/runs/2026-01-01/00-00-00-000000_made_up",
            "/ui/runs/..%2F..%2Fserving",
            "/ui/runs/" + quote(str(world["out"] / lgbm)),
            "/ui/runs//etc/passwd",
            "/ui/runs/runs",
            f"/ui/runs/{lgbm}/..",
            f"/ui/runs/{lgbm}/plots/..%2Fmetrics.json",
            f"/ui/runs/{lgbm}/plots/..%2F..%2F..%2Fregistry%2Fregistry.db",
            f"/ui/runs/{lgbm}/plots/%2Fetc%2Fpasswd",
            f"/ui/runs/{lgbm}/plots/metrics.json",
            f"/ui/runs/{lgbm}/plots/roc",
            f"/ui/runs/{lgbm}/plots/../metrics.json",
            f"/ui/runs/{wine}/plots/roc.png",
        ):
            answer = c.get(path)
            assert answer.status_code == 404, path
            assert not answer.content.startswith(b"\x89PNG") and '"auc"' not in answer.text
            answers[path] = main_text(answer.text)
        assert answers[f"/ui/runs/{wine}"] == answers["/ui/runs/runs"]
        assert "no such run" in answers[f"/ui/runs/{wine}"]
    with signed_in(app, world, "bea") as c:  # an alpha plot, asked for by beta
        foreign = c.get(f"/ui/runs/{lgbm}/plots/roc.png")
        made_up = c.get("/ui/runs/runs/x/plots/roc.png")
        assert foreign.status_code == made_up.status_code == 404
        assert main_text(foreign.text) == main_text(made_up.text)
        assert c.get(f"/ui/runs/{lgbm}").status_code == 404
        assert c.get(f"/ui/runs/{wine}").status_code == 200


def test_pages_with_2000_runs(dashboard_world, tmp_path):
    """The runs pages over 2,000 run folders (timings printed, not asserted)."""
    world = dashboard_world
    out = tmp_path / "outputs"
    folders = clone(real_run(world), out, 2000)
    config = compose_config(
        "automl.conf.apps", "serve", [f"paths.output_dir={out}", f"auth.url={world['db']}"]
    )
    ids = [f.relative_to(out).as_posix() for f in folders]
    with signed_in(create_app(config), world, "vic") as c:
        c.get("/ui/runs")  # the first scan
        for path, shown in (
            ("/ui/runs", 50),
            ("/ui/runs?sort=auc&descending=true&page=10", 50),
            ("/ui/runs?project=alpha&text=000124", 1),
            (f"/ui/runs/{ids[5]}", None),
            (f"/ui/runs/compare?run={ids[5]}&run={ids[6]}", None),
        ):
            started = time.perf_counter()
            answer = c.get(path)
            took = (time.perf_counter() - started) * 1000
            print(f"{path[:70]:<70} {answer.status_code} {took:6.1f} ms")
            assert answer.status_code == 200, path
            if shown is not None:
                assert len(listed(answer.text)) == shown, path
        assert "1,500 run(s)" in c.get("/ui/runs").text  # every 4th is beta's
