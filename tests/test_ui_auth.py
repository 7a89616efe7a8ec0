"""The dashboard's door: sign-in with an API key, the session cookie, CSRF, sign-out."""

from __future__ import annotations

import subprocess

import pytest
from dashboard_world import ALPHA, BETA, csrf_of, sign_in, ui_app
from fastapi.testclient import TestClient

from automl.serving.ui import ROUTERS

BASE = "http://127.0.0.1"


@pytest.fixture(scope="module")
def app(dashboard_world):
    return ui_app(dashboard_world)


def test_a_signed_out_visitor_sees_only_the_sign_in_page(app):
    with TestClient(app, base_url=BASE) as c:
        for path in ("/ui/", "/ui/runs", f"/ui/models/{ALPHA}", "/ui/admin", "/ui/data"):
            r = c.get(path, follow_redirects=False)
            assert r.status_code == 303, path
            assert r.headers["location"].startswith("/ui/sign-in?next=")
            assert ALPHA not in r.text and "alpha" not in r.headers["location"].split("next=")[0]
        page = c.get("/ui/sign-in")
        assert page.status_code == 200 and 'type="password"' in page.text
        assert "alpha" not in page.text and "beta" not in page.text
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


def test_sign_in_sets_a_signed_httponly_strict_cookie_and_shows_own_projects(app, dashboard_world):
    with TestClient(app, base_url=BASE) as c:
        form = c.get("/ui/sign-in?next=/ui/runs")
        done = c.post(
            "/ui/sign-in",
            data={"csrf": csrf_of(form.text), "key": dashboard_world["keys"]["vic"],
                  "next": "/ui/runs"},
            follow_redirects=False,
        )  # fmt: skip
        assert done.status_code == 303 and done.headers["location"] == "/ui/runs"
        cookie = done.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/ui" in cookie
        assert "max-age=28800" in cookie
        assert dashboard_world["keys"]["vic"] not in done.headers["set-cookie"]
        home = c.get("/ui/")
        assert home.status_code == 200 and ALPHA in home.text
        assert BETA not in home.text and "beta" not in home.text


def test_wrong_key_forged_cookie_and_foreign_next_are_refused(app, dashboard_world):
    with TestClient(app, base_url=BASE) as c:
        form = c.get("/ui/sign-in")
        bad = c.post("/ui/sign-in", data={"csrf": csrf_of(form.text), "key": "ak_x_y"})
        assert bad.status_code == 401 and "Unknown or revoked API key" in bad.text
        no_token = c.post("/ui/sign-in", data={"key": dashboard_world["keys"]["vic"]})
        assert no_token.status_code == 403
        form = c.get("/ui/sign-in")
        away = c.post(
            "/ui/sign-in",
            data={"csrf": csrf_of(form.text), "key": dashboard_world["keys"]["vic"],
                  "next": "https://evil.example/"},
            follow_redirects=False,
        )  # fmt: skip
        assert away.headers["location"] == "/ui/"
        session = c.cookies.get("automl_session")
        body, mac = session.split(".")
        c.cookies.set("automl_session", body + "." + mac[::-1], path="/ui")
        assert c.get("/ui/", follow_redirects=False).status_code == 303


def test_sign_out_needs_the_csrf_token_and_ends_the_session(app, dashboard_world):
    with TestClient(app, base_url=BASE) as c:
        sign_in(c, dashboard_world["keys"]["vic"])
        home = c.get("/ui/")
        assert c.post("/ui/sign-out", data={"csrf": "forged"}).status_code == 403
        assert c.get("/ui/").status_code == 200
        out = c.post("/ui/sign-out", data={"csrf": csrf_of(home.text)}, follow_redirects=False)
        assert out.status_code == 303
        assert c.get("/ui/", follow_redirects=False).status_code == 303


def test_revoking_the_key_ends_its_sessions(dashboard_world, tmp_path):
    world = dashboard_world
    app = ui_app(world, "auth.cache_ttl=0")
    done = subprocess.run(
        [*world["admin"], "key", "create", "vic", "--label", "to revoke"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip().split()[-1]
    with TestClient(app, base_url=BASE) as c:
        sign_in(c, key)
        assert c.get("/ui/").status_code == 200
        revoked = subprocess.run(
            [*world["admin"], "key", "revoke", key], capture_output=True, text=True
        )
        assert revoked.returncode == 0, revoked.stderr
        assert c.get("/ui/", follow_redirects=False).status_code == 303


def test_a_site_admin_sees_every_project_and_has_every_role(app, dashboard_world):
    with TestClient(app, base_url=BASE) as c:
        sign_in(c, dashboard_world["keys"]["root"])
        home = c.get("/ui/").text
        assert ALPHA in home and BETA in home and "site admin" in home
        assert home.count("last run") == 2 and "(lgbm, complete)" in home  # beta's one run
        api = {"X-API-Key": dashboard_world["keys"]["root"]}
        assert c.get(f"/v1/models/{BETA}/metadata", headers=api).status_code == 200
        assert c.get("/v1/projects/alpha/audit", headers=api).status_code == 200
        # every recorded metric comes back (the first one, cv_*, was once cut off)
        versions = c.get(f"/v1/models/{ALPHA}", headers=api).json()["versions"]
        assert {"cv_roc_auc", "auc", "log_loss", "train_seconds"} <= set(versions[0]["metrics"])


def test_every_dashboard_form_refuses_a_post_without_its_csrf_token(app, dashboard_world):
    posts = [
        route.path
        for router in ROUTERS
        for route in router.routes
        if "POST" in route.methods and route.path != "/ui/sign-in"
    ]
    assert len(posts) >= 10, posts
    with TestClient(app, base_url=BASE) as c:
        sign_in(c, dashboard_world["keys"]["root"])
        for path in posts:
            target = path.replace("{name}", ALPHA)
            for fields in ({"confirm": "yes"}, {"csrf": "forged", "confirm": "yes"}):
                answer = c.post(target, data=fields)
                assert answer.status_code == 403, (target, fields, answer.status_code)
                assert "CSRF" in answer.text
        assert c.get("/ui/").status_code == 200  # still signed in: nothing was done
