"""The dashboard's model registry: models, versions, lineage and contract pages; promoting,
moving and removing aliases (editors and admins, CSRF, confirmation, audit log)."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from dashboard_world import ALPHA, BETA, csrf_of, sign_in, ui_app
from fastapi.testclient import TestClient

BASE = "http://127.0.0.1"
MODEL = f"/ui/models/{ALPHA}"
OWN = "ui-models-test"  # an alias only this module uses
PROMOTE_FORM = f'action="{MODEL}/promote"'


@pytest.fixture(scope="module")
def app(dashboard_world):
    # every API request resolves aliases afresh, so a move shows at once
    return ui_app(dashboard_world, "cache.resolve_ttl=0")


@pytest.fixture
def as_user(app, dashboard_world):
    """``with as_user("eve") as c``: a client signed in to the dashboard as that user."""

    @contextmanager
    def signed(user: str) -> Iterator[TestClient]:
        with TestClient(app, base_url=BASE) as client:
            yield sign_in(client, dashboard_world["keys"][user])

    return signed


@pytest.fixture
def aliases_restored(app) -> Iterator[None]:
    """Aliases of the shared world's model as they were (``production`` absent while the
    test runs), whatever the test did."""
    registry = app.state.server.models.registry
    before = app.state.server.models.target(ALPHA, "production")
    if before is not None:
        registry.remove_alias(ALPHA, "production")
    try:
        yield
    finally:
        for alias in ("production", OWN):
            if app.state.server.models.target(ALPHA, alias) is not None:
                registry.remove_alias(ALPHA, alias)
        if before is not None:
            registry.set_alias(ALPHA, "production", before)


def post(client: TestClient, path: str, page: str, **fields: str):
    """The form posted with the CSRF token of ``page``, redirects not followed."""
    return client.post(path, data={"csrf": csrf_of(page), **fields}, follow_redirects=False)


def problem(response) -> str:
    """The message of an error page."""
    found = re.search(r'<p class="problem" role="alert">([^<]*)</p>', response.text)
    assert found, response.text[-2000:]
    return html.unescape(found.group(1))


def api_version(client: TestClient, key: str, alias: str) -> int | None:
    """The version ``ALPHA@alias`` resolves to in the API (None: no such alias)."""
    answer = client.get(f"/v1/models/{ALPHA}/metadata?alias={alias}", headers={"X-API-Key": key})
    if answer.status_code == 404:
        return None
    assert answer.status_code == 200, answer.text
    return answer.json()["version"]


@pytest.mark.parametrize("user", ["ada", "eve", "vic"])
def test_pages_show_versions_lineage_and_contract_to_every_alpha_role(as_user, user):
    editor = user != "vic"
    with as_user(user) as c:
        listing = c.get("/ui/models")
        assert listing.status_code == 200
        assert f'href="{MODEL}"' in listing.text and f'href="{MODEL}/2"' in listing.text
        model = c.get(MODEL)
        assert model.status_code == 200
        assert f'href="{MODEL}/1"' in model.text and f'href="{MODEL}/2"' in model.text
        for column in ("cv_roc_auc", "auc", "accuracy"):  # the union of the metric names
            assert f'<th scope="col" class="num">{column}</th>' in model.text
        assert re.search(r'href="/ui/runs/runs/[^"]+_breast_cancer_lgbm"', model.text)
        assert (PROMOTE_FORM in model.text) is editor
        assert ("Recent changes" in model.text) is editor
        version = c.get(f"{MODEL}/1")
        assert version.status_code == 200
        for shown in (
            "Data fingerprint",
            "Source commit",
            "<td>scikit-learn</td>",  # library versions
            "<td><code>mean radius</code></td>",  # the input contract
            "lgbm.num_leaves=",  # best parameters
            "project: alpha",  # the composed config, as YAML
            f"/v1/models/{ALPHA}/metadata?version=1",
            f"/ui/monitoring/{ALPHA}",
        ):
            assert shown in version.text, shown
        assert re.search(r"<dt>Source commit</dt><dd><code>[0-9a-f]{40}</code>", version.text)
        assert (PROMOTE_FORM in version.text) is editor
        for text in (listing.text, model.text, version.text):
            assert BETA not in text and "beta" not in text


def test_a_viewer_has_no_promote_form_and_gets_403_when_posting_anyway(app, as_user):
    with as_user("vic") as c:
        page = c.get(MODEL).text
        assert PROMOTE_FORM not in page and "/unalias" not in page
        refused = post(c, f"{MODEL}/promote", page, version="1", alias=OWN)
        assert refused.status_code == 403
        assert f"no editor access to model '{ALPHA}' for user 'vic'" in problem(refused)
        forced = post(c, f"{MODEL}/promote", page, version="1", alias=OWN, confirm="yes")
        assert forced.status_code == 403
    assert app.state.server.models.target(ALPHA, OWN) is None
    assert all(e["actor"] != "vic" for e in app.state.server.auth.audit_log("alpha"))


@pytest.mark.usefixtures("aliases_restored")
def test_promote_move_and_remove_production_through_the_forms(app, as_user, dashboard_world):
    keys = dashboard_world["keys"]
    with as_user("eve") as c:
        page = c.get(MODEL).text
        assert api_version(c, keys["eve"], "production") is None
        done = post(c, f"{MODEL}/promote", page, version="1", alias="production")
        assert done.status_code == 303
        assert done.headers["location"] == f"{MODEL}?done=promoted&alias=production"
        shown = c.get(done.headers["location"]).text
        assert "production now points to version 1." in shown
        assert api_version(c, keys["eve"], "production") == 1
        entry = app.state.server.auth.audit_log("alpha")[0]
        assert (entry["actor"], entry["action"], entry["target"]) == ("eve", "promote", ALPHA)
        assert entry["details"] == {"alias": "production", "version": 1, "previous": None}
        assert re.search(r"<td>eve</td>\s*<td>promote</td>", shown)  # the page's audit

        asked = post(c, f"{MODEL}/promote", shown, version="2", alias="production")
        assert asked.status_code == 200
        assert "production now points to version 1; move it to version 2?" in asked.text
        assert 'name="confirm" value="yes"' in asked.text and f'href="{MODEL}"' in asked.text
        assert api_version(c, keys["eve"], "production") == 1  # not moved before the yes
        moved = post(
            c, f"{MODEL}/promote", asked.text, version="2", alias="production", confirm="yes"
        )
        assert moved.status_code == 303
        assert api_version(c, keys["eve"], "production") == 2
        assert app.state.server.auth.audit_log("alpha")[0]["details"]["previous"] == 1

        page = c.get(MODEL).text
        assert "Remove production" in page
        asked = post(c, f"{MODEL}/unalias", page, alias="production")
        assert asked.status_code == 200 and "Remove the alias production" in asked.text
        assert api_version(c, keys["eve"], "production") == 2
        removed = post(c, f"{MODEL}/unalias", asked.text, alias="production", confirm="yes")
        assert removed.status_code == 303
        assert "Alias production removed." in c.get(removed.headers["location"]).text
        assert api_version(c, keys["eve"], "production") is None
        audit = c.get("/v1/projects/alpha/audit", headers={"X-API-Key": keys["ada"]}).json()
        newest = audit["audit"][0]
        assert (newest["actor"], newest["action"], newest["target"]) == ("eve", "unalias", ALPHA)


@pytest.mark.usefixtures("aliases_restored")
def test_an_admin_promotes_from_the_version_page_a_new_alias_needs_no_confirmation(app, as_user):
    with as_user("ada") as c:
        page = c.get(f"{MODEL}/2").text
        done = post(c, f"{MODEL}/promote", page, version="2", alias=OWN)
        assert done.status_code == 303
        assert app.state.server.models.target(ALPHA, OWN) == 2
        again = post(c, f"{MODEL}/promote", page, version="2", alias=OWN)
        assert again.headers["location"].endswith("done=unchanged&alias=" + OWN)
        assert f"{OWN} already pointed to version 2" in c.get(again.headers["location"]).text
        assert app.state.server.auth.audit_log("alpha")[0]["actor"] == "ada"


def test_bad_requests_are_refused_without_naming_other_models(app, as_user):
    with as_user("eve") as c:
        page = c.get(MODEL).text
        missing = post(c, f"{MODEL}/promote", page, version="99", alias=OWN)
        assert missing.status_code == 404
        assert f"model '{ALPHA}' has no version 99 (versions: [1, 2])" in problem(missing)
        for alias in ("bad alias!", "../x", "", "a" * 101):
            bad = post(c, f"{MODEL}/promote", page, version="1", alias=alias)
            assert bad.status_code == 422, alias
        assert post(c, f"{MODEL}/promote", page, version="one", alias=OWN).status_code == 422
        no_alias = post(c, f"{MODEL}/unalias", page, alias=OWN, confirm="yes")
        assert no_alias.status_code == 404 and f"no alias '{OWN}'" in problem(no_alias)
        forged = c.post(f"{MODEL}/promote", data={"version": "1", "alias": OWN})
        assert forged.status_code == 403 and "CSRF" in forged.text
        unknown = post(c, "/ui/models/alpha.nope/promote", page, version="1", alias=OWN)
        assert unknown.status_code == 404 and "no model 'alpha.nope'" in problem(unknown)
        for name in (BETA, "gamma.nope"):  # foreign or unknown project: the same 403
            foreign = post(c, f"/ui/models/{name}/promote", page, version="1", alias=OWN)
            assert foreign.status_code == 403
            assert f"no editor access to model '{name}'" in problem(foreign)
            assert c.get(f"/ui/models/{name}").status_code == 403
            assert c.get(f"/ui/models/{name}/1").status_code == 403
        for text in (missing.text, unknown.text, no_alias.text):
            assert "beta" not in text and "/registry" not in text
    assert app.state.server.models.target(ALPHA, OWN) is None


def test_a_beta_user_sees_only_beta_and_gets_403_on_alpha(as_user):
    with as_user("bea") as c:
        listing = c.get("/ui/models")
        assert f'href="/ui/models/{BETA}"' in listing.text
        assert "alpha" not in listing.text
        assert c.get(f"/ui/models/{BETA}/1").status_code == 200
        assert c.get("/ui/models?project=alpha").status_code == 403
        for path in (MODEL, f"{MODEL}/1"):
            refused = c.get(path)
            assert refused.status_code == 403
            assert f"no viewer access to model '{ALPHA}' for user 'bea'" in problem(refused)
        page = c.get(f"/ui/models/{BETA}").text
        assert post(c, f"{MODEL}/promote", page, version="1", alias=OWN).status_code == 403
