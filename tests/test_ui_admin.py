"""The dashboard's admin pages and own keys: who may see and change what, keys shown once,
confirmation before revoking, CSRF on every form, and the API agreeing afterwards."""

from __future__ import annotations

import re

import pytest
from dashboard_world import csrf_of, sign_in, ui_app
from fastapi.testclient import TestClient

from automl.services.identity import AuthStore

BASE = "http://127.0.0.1"
ADDED = "ui-added"  # a user the site admin adds from the page
NEWCOMER = "ui-newcomer"  # a user the site admin makes a key for
HELPER = "ui-helper"  # a user ada gives a role on alpha


@pytest.fixture(scope="module")
def app(dashboard_world):
    return ui_app(dashboard_world)


def signed_in(app, key: str) -> TestClient:
    return sign_in(TestClient(app, base_url=BASE), key)


def shown_key(html: str) -> str:
    """The new key on the page that answers a key creation."""
    found = re.search(r'<p class="key" id="new-key">(ak_[^<]+)</p>', html)
    assert found, html
    return found.group(1)


def without_tokens(html: str) -> str:
    """The page less its CSRF token (random text could spell a project's name)."""
    return html.replace(csrf_of(html), "")


def api_user(app, key: str) -> tuple[int, dict]:
    """(status, body) of GET /v1/projects with ``key``."""
    with TestClient(app, base_url=BASE) as c:
        answer = c.get("/v1/projects", headers={"X-API-Key": key})
        return answer.status_code, answer.json()


def test_site_admin_sees_every_user_and_project_adds_a_user_and_grants_a_role(app, dashboard_world):
    with signed_in(app, dashboard_world["keys"]["root"]) as c:
        home = c.get("/ui/admin")
        assert home.status_code == 200
        for name in ("ada", "bea", "eve", "vic", "root", "alpha", "beta"):
            assert f">{name}<" in home.text or f"<code>{name}</code>" in home.text, name
        added = c.post(
            "/ui/admin/users",
            data={"csrf": csrf_of(home.text), "name": ADDED},
            follow_redirects=False,
        )
        assert added.status_code == 303 and added.headers["location"] == "/ui/admin?done=user"
        twice = c.post("/ui/admin/users", data={"csrf": csrf_of(home.text), "name": ADDED})
        assert twice.status_code == 409 and "already exists" in twice.text
        granted = c.post(
            "/ui/admin/roles",
            data={"csrf": csrf_of(home.text), "user": ADDED, "project": "beta",
                  "role": "viewer"},
        )  # fmt: skip
        assert granted.status_code == 200 and "Role granted." in granted.text
        assert re.search(rf"<td>{ADDED}</td>\s*<td>\d{{4}}-.*?</td>\s*<td>viewer on", granted.text)
        unknown = c.post(
            "/ui/admin/roles",
            data={"csrf": csrf_of(home.text), "user": "nobody-here", "project": "beta",
                  "role": "viewer"},
        )  # fmt: skip
        assert unknown.status_code == 400 and "no user &#39;nobody-here&#39;" in unknown.text
        audit = c.get("/ui/admin/audit", params={"action": "grant", "target": ADDED})
        assert audit.status_code == 200 and "1 entry." in audit.text
        assert re.search(r"<td>root</td>\s*<td><code>grant</code></td>", audit.text)
    store = AuthStore(dashboard_world["db"])
    assert {"user": ADDED, "project": "beta", "role": "viewer"} in store.roles()
    store.revoke_role(ADDED, "beta", actor="tests")  # the world's projects as they were


def test_a_new_key_is_shown_once_works_and_is_revoked_after_confirmation(app, dashboard_world):
    store = AuthStore(dashboard_world["db"])
    store.add_user(NEWCOMER, actor="tests")
    store.grant(NEWCOMER, "beta", "viewer", actor="tests")
    with signed_in(app, dashboard_world["keys"]["root"]) as c:
        keys = c.get("/ui/admin/keys")
        assert keys.status_code == 200
        made = c.post(
            "/ui/admin/keys",
            data={"csrf": csrf_of(keys.text), "user": NEWCOMER, "label": "ci job"},
        )
        assert made.status_code == 200 and "not shown again" in made.text
        assert made.headers["cache-control"] == "no-store" and "location" not in made.headers
        key = shown_key(made.text)
        key_id = key.split("_")[1]
        assert api_user(app, key) == (
            200, {"user": NEWCOMER, "projects": [{"project": "beta", "role": "viewer"}]}
        )  # fmt: skip
        again = c.get("/ui/admin/keys")
        assert key_id in again.text and key not in again.text
        assert key.split("_")[2] not in c.get("/ui/admin/audit").text
        asked = c.post(
            "/ui/admin/keys/revoke", data={"csrf": csrf_of(again.text), "key_id": key_id}
        )
        assert asked.status_code == 200 and "Are you sure?" in asked.text
        assert 'name="confirm" value="yes"' in asked.text
        assert api_user(app, key)[0] == 200  # not yet
        done = c.post(
            "/ui/admin/keys/revoke",
            data={"csrf": csrf_of(asked.text), "key_id": key_id, "confirm": "yes"},
            follow_redirects=False,
        )
        assert (
            done.status_code == 303
            and done.headers["location"] == "/ui/admin/keys?done=key-revoked"
        )
        assert api_user(app, key)[0] == 401
        listing = c.get(done.headers["location"])
        assert "Key revoked" in listing.text and key not in listing.text
        revoked = [e for e in store.audit_log(last=20) if e["action"] == "revoke_key"]
        assert revoked[0]["actor"] == "root" and revoked[0]["target"] == key_id
        # revoking a role asks first, too
        home = c.get("/ui/admin", params={"project": "beta"})
        fields = {"csrf": csrf_of(home.text), "user": NEWCOMER, "project": "beta"}
        asked = c.post("/ui/admin/roles/revoke", data=fields)
        assert asked.status_code == 200 and "Are you sure?" in asked.text
        assert NEWCOMER in [r["user"] for r in store.roles_on(["beta"])]
        done = c.post("/ui/admin/roles/revoke", data={**fields, "confirm": "yes"})
        assert done.status_code == 200 and "Role revoked." in done.text
        assert NEWCOMER not in [r["user"] for r in store.roles_on(["beta"])]


def test_a_project_admin_sees_and_changes_only_their_projects(app, dashboard_world):
    AuthStore(dashboard_world["db"]).add_user(HELPER, actor="tests")
    with signed_in(app, dashboard_world["keys"]["ada"]) as c:
        pages = {p: c.get(p) for p in ("/ui/admin", "/ui/admin/audit", "/ui/account")}
        for path, answer in pages.items():
            assert answer.status_code == 200, path
            text = without_tokens(answer.text)
            assert "beta" not in text and "bea" not in text, path
        assert "vic@alpha" in pages["/ui/admin/audit"].text
        assert "/ui/admin/keys" not in pages["/ui/admin"].text
        token = csrf_of(pages["/ui/admin"].text)
        for path in ("/ui/admin/keys", "/ui/admin?project=beta", "/ui/admin/audit?project=beta"):
            assert c.get(path).status_code == 403, path
        for path, data in (
            ("/ui/admin/roles", {"user": "vic", "project": "beta", "role": "admin"}),
            ("/ui/admin/roles/revoke", {"user": "bea", "project": "beta", "confirm": "yes"}),
            ("/ui/admin/users", {"name": "intruder"}),
            ("/ui/admin/keys", {"user": "bea"}),
        ):
            refused = c.post(path, data={"csrf": token, **data})
            assert refused.status_code == 403, path
        granted = c.post(
            "/ui/admin/roles", data={"csrf": token, "user": HELPER, "project": "alpha",
                                     "role": "editor"},
        )  # fmt: skip
        assert granted.status_code == 200 and f"<td>{HELPER}</td>" in granted.text
        audit = without_tokens(c.get("/ui/admin/audit", params={"actor": "ada"}).text)
        assert f"{HELPER}@alpha" in audit and "beta" not in audit
        fields = {"csrf": token, "user": HELPER, "project": "alpha"}
        asked = c.post("/ui/admin/roles/revoke", data=fields)
        assert "Are you sure?" in asked.text and "editor" in asked.text
        done = c.post("/ui/admin/roles/revoke", data={**fields, "confirm": "yes"})
        assert done.status_code == 200 and f"<td>{HELPER}</td>" not in done.text
    roles = AuthStore(dashboard_world["db"]).roles()
    assert {"user": "bea", "project": "beta", "role": "editor"} in roles
    assert {"user": "vic", "project": "alpha", "role": "viewer"} in roles


def test_a_viewer_has_no_admin_pages_but_manages_own_keys(app, dashboard_world):
    keys = dashboard_world["keys"]
    with signed_in(app, keys["vic"]) as c:
        home = c.get("/ui/")
        assert 'href="/ui/admin"' not in home.text
        for path in ("/ui/admin", "/ui/admin/audit", "/ui/admin/keys"):
            assert c.get(path).status_code == 403, path
        token = csrf_of(home.text)
        refused = c.post(
            "/ui/admin/roles", data={"csrf": token, "user": "vic", "project": "alpha",
                                     "role": "admin"},
        )  # fmt: skip
        assert refused.status_code == 403
        account = c.get("/ui/account")
        assert account.status_code == 200 and keys["vic"].split("_")[1] in account.text
        assert (
            keys["ada"].split("_")[1] not in account.text and "Users and roles" not in account.text
        )
        made = c.post("/ui/account/keys", data={"csrf": token, "label": "laptop"})
        assert made.status_code == 200 and made.headers["cache-control"] == "no-store"
        key = shown_key(made.text)
        assert api_user(app, key)[1]["user"] == "vic"
        again = c.get("/ui/account")
        assert key.split("_")[1] in again.text and key not in again.text and "laptop" in again.text
        foreign = c.post(
            "/ui/account/keys/revoke",
            data={"csrf": token, "key_id": keys["ada"].split("_")[1], "confirm": "yes"},
        )
        assert foreign.status_code == 404 and api_user(app, keys["ada"])[0] == 200
        fields = {"csrf": token, "key_id": key.split("_")[1]}
        asked = c.post("/ui/account/keys/revoke", data=fields)
        assert asked.status_code == 200 and "Are you sure?" in asked.text
        done = c.post(
            "/ui/account/keys/revoke", data={**fields, "confirm": "yes"}, follow_redirects=False
        )
        assert (
            done.status_code == 303 and done.headers["location"] == "/ui/account?done=key-revoked"
        )
        assert api_user(app, key)[0] == 401 and api_user(app, keys["vic"])[0] == 200
        assert c.get("/ui/account").status_code == 200  # still signed in with the first key


def test_forms_without_the_csrf_token_are_refused(app, dashboard_world):
    with signed_in(app, dashboard_world["keys"]["root"]) as c:
        for path, data in (
            ("/ui/admin/users", {"name": "no-token"}),
            ("/ui/admin/roles", {"user": "vic", "project": "alpha", "role": "admin"}),
            ("/ui/admin/keys", {"user": "vic"}),
            ("/ui/account/keys", {"label": "forged"}),
            ("/ui/admin/keys/revoke", {"key_id": dashboard_world["keys"]["vic"].split("_")[1],
                                       "confirm": "yes"}),
        ):  # fmt: skip
            assert c.post(path, data=data).status_code == 403, path
            assert c.post(path, data={**data, "csrf": "forged"}).status_code == 403, path
    store = AuthStore(dashboard_world["db"])
    assert "no-token" not in [u["name"] for u in store.users()]
    assert {"user": "vic", "project": "alpha", "role": "viewer"} in store.roles()
    assert api_user(app, dashboard_world["keys"]["vic"])[0] == 200
