"""The dashboard's data pages: data sets known through the visitor's models, their contract
and YAML (the ingested file when `automl.ingest` wrote one, else the training config's),
the ingest profile report served sandboxed, and nothing of another project."""

from __future__ import annotations

import re

import pytest
from dashboard_world import ALPHA, cancer_rows, sign_in, ui_app
from fastapi.testclient import TestClient
from helpers import run_cli
from sklearn.datasets import load_wine

BASE = "http://127.0.0.1"
PROFILE_CSP = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'"


@pytest.fixture(scope="module")
def conf_dir(tmp_path_factory):
    """A conf folder where the real ingest CLI wrote breast_cancer (alpha's data set) and
    wine (beta's)."""
    root = tmp_path_factory.mktemp("ingested")
    cancer, wine = root / "cancer.csv", root / "wine.csv"
    cancer_rows(120).to_csv(cancer, index=False)
    load_wine(as_frame=True).frame.to_csv(wine, index=False)
    conf = root / "conf"
    for source, target, name in ((cancer, "diagnosis", "breast_cancer"), (wine, "target", "wine")):
        done = run_cli(
            "automl.ingest", f"input={source}", f"target={target}", f"name={name}",
            f"conf_dir={conf}", "progress=false", "report.max_plots=3",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
    return conf


@pytest.fixture(scope="module")
def app(dashboard_world, conf_dir):
    return ui_app(dashboard_world, f"ui.conf_dirs=['{conf_dir}']")


def signed_in(app, key: str) -> TestClient:
    return sign_in(TestClient(app, base_url=BASE), key)


def test_the_list_shows_the_visitors_data_sets_only(app, dashboard_world):
    with signed_in(app, dashboard_world["keys"]["vic"]) as c:
        listing = c.get("/ui/data")
        assert listing.status_code == 200
        assert 'href="/ui/data/alpha/breast_cancer"' in listing.text
        assert 'href="/ui/data/alpha/breast_cancer/profile"' in listing.text
        row = re.search(r"<td>alpha</td>\s*<td>binary</td>\s*<td>diagnosis</td>", listing.text)
        assert row, listing.text
        assert re.search(r'<td class="num">31</td>\s*<td class="num">30</td>\s*<td>yes</td>',
                         listing.text)  # fmt: skip
        assert "wine" not in listing.text and "beta" not in listing.text
    with signed_in(app, dashboard_world["keys"]["root"]) as c:
        listing = c.get("/ui/data").text
        assert (
            'href="/ui/data/beta/wine"' in listing
            and 'href="/ui/data/alpha/breast_cancer"' in listing
        )


def test_a_data_set_page_shows_its_contract_yaml_features_and_models(app, dashboard_world):
    with signed_in(app, dashboard_world["keys"]["vic"]) as c:
        page = c.get("/ui/data/alpha/breast_cancer")
    assert page.status_code == 200
    text = page.text
    assert re.search(r"<td><code>diagnosis</code></td>\s*<td>target</td>\s*<td>category</td>", text)
    assert re.search(r"<td><code>mean radius</code></td>\s*<td>feature</td>\s*<td>float</td>", text)
    yaml_block = re.search(r"<pre[^>]*>(.*?)</pre>", text, re.S).group(1)
    assert "name: breast_cancer" in yaml_block and "automl.data.sources.FileSource" in yaml_block
    assert "by automl.ingest" in yaml_block and "written by <code>automl.ingest</code>" in text
    assert "<code>worst fractal dimension</code>" in text  # a feature
    assert re.search(r"<code>[0-9a-f]{64}</code>", text)  # the data fingerprint
    for version, family in ((1, "lgbm"), (2, "rf")):
        assert re.search(
            rf'>{ALPHA}</a></td>\s*<td class="num"><a [^>]+>{version}</a></td>\s*<td>{family}</td>',
            text,
        ), family
    assert "wine" not in text and "beta" not in text


def test_without_an_ingested_file_the_yaml_is_the_training_configs(dashboard_world):
    with signed_in(ui_app(dashboard_world), dashboard_world["keys"]["vic"]) as c:
        page = c.get("/ui/data/alpha/breast_cancer")
        assert page.status_code == 200
        yaml_block = re.search(r"<pre[^>]*>(.*?)</pre>", page.text, re.S).group(1)
        assert "SklearnSource" in yaml_block and "positive_class: malignant" in yaml_block
        assert re.search(r"<dt>Ingested</dt><dd>no</dd>", page.text)
        assert c.get("/ui/data/alpha/breast_cancer/profile").status_code == 404


def test_the_profile_report_is_served_sandboxed(app, dashboard_world):
    with signed_in(app, dashboard_world["keys"]["vic"]) as c:
        report = c.get("/ui/data/alpha/breast_cancer/profile")
    assert report.status_code == 200
    assert report.headers["content-security-policy"] == PROFILE_CSP
    assert report.headers["x-content-type-options"] == "nosniff"
    assert "<h1>Data profile: breast_cancer: " in report.text
    assert 'src="data:image/png;base64,' in report.text and 'src="plots/' not in report.text


def test_another_projects_or_unknown_data_set_is_refused_alike(app, dashboard_world):
    with signed_in(app, dashboard_world["keys"]["vic"]) as c:
        refusals = {
            path: c.get(path)
            for path in ("/ui/data/beta/wine", "/ui/data/beta/nope", "/ui/data/beta/wine/profile")
        }
        for path, answer in refusals.items():
            assert answer.status_code == 403, path
            assert (
                "no viewer access to project &#39;beta&#39; for user &#39;vic&#39;" in answer.text
            )
            assert "wine.csv" not in answer.text and "FileSource" not in answer.text
        # the wine report exists, but alpha has no model of it; names never become paths
        for path in (
            "/ui/data/alpha/wine",
            "/ui/data/alpha/wine/profile",
            "/ui/data/alpha/%2E%2E/profile",
            "/ui/data/alpha/breast_cancer%2F..%2F..%2Fwine/profile",
        ):
            answer = c.get(path)
            assert answer.status_code == 404, path
            assert "sandbox" not in answer.headers["content-security-policy"], path
