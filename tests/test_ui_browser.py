"""The dashboard in a real headless Chromium (Playwright) against a real server process:
sign-in, every page reached by following links (each checked by axe-core and saved as a
1280 px screenshot), a promote from the UI that the API sees, the role matrix, project
isolation, phone width and the keyboard.

Screenshots go to ``test-artifacts/ui/`` (``$AUTOML_UI_SCREENSHOTS`` overrides it).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from browser import chromium_page
from dashboard_world import ALPHA
from helpers import ROOT, serve_process

SHOTS = Path(os.environ.get("AUTOML_UI_SCREENSHOTS", ROOT / "test-artifacts" / "ui"))
SKIP_LINKS = ("/ui/static/", "/reports/", "/profile", "/plots/")  # files, not pages
MAX_PAGES = 45


@pytest.fixture(scope="module")
def server(dashboard_world, tmp_path_factory):
    """A real ``python -m automl.serve`` over the world's stores."""
    log = tmp_path_factory.mktemp("ui-server") / "serve.log"
    overrides = [*dashboard_world["overrides"], "auth.cache_ttl=0"]
    with serve_process(overrides, log) as (url, _):
        yield url


def eventually(probe, seconds: float = 5.0):
    """``probe()`` once it is truthy, or its last value after ``seconds`` (the API picks
    up an alias move within ``cache.resolve_ttl``)."""
    deadline = time.monotonic() + seconds
    while not (found := probe()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return found


def sign_in(page, url: str, key: str) -> None:
    page.goto(f"{url}/ui/")
    assert "/ui/sign-in" in page.url
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{url}/ui/")


def axe_problems(page) -> list[str]:
    """Serious and critical axe-core violations of the page."""
    from axe_playwright_python.sync_playwright import Axe

    found = Axe().run(page).response["violations"]
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes'][:3]]}"
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


def shot_name(url: str) -> str:
    parts = urlsplit(url)
    name = re.sub(r"[^A-Za-z0-9]+", "-", parts.path.removeprefix("/ui/")).strip("-") or "overview"
    return name[:80] + (
        ("-" + re.sub(r"[^A-Za-z0-9]+", "-", parts.query))[:40] if parts.query else ""
    )


def links(page, url: str) -> list[str]:
    """The dashboard pages a page links to (same site, no files, no sign-out)."""
    found = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
    keep = []
    for href in found:
        parts = urlsplit(href)
        if f"{parts.scheme}://{parts.netloc}" != url or not parts.path.startswith("/ui/"):
            continue
        if any(s in parts.path for s in SKIP_LINKS):
            continue
        keep.append(href.split("#")[0])
    return keep


def check_page(page, target: str, problems: list[str], shots: Path | None) -> None:
    """No console problems, no serious axe-core violations; a 1280 px screenshot."""
    assert not problems, f"{target}: {problems}"
    if shots is not None:
        page.screenshot(path=str(shots / f"{shot_name(target)}.png"), full_page=True)
    violations = axe_problems(page)
    assert not violations, f"{target}: {violations}"


def crawl(page, url: str, problems: list[str], shots: Path | None = None) -> dict[str, str]:
    """Visit every page reachable from the overview (one per path; sort and page
    variants of a table count once): {url: text}; axe (and a screenshot into ``shots``)
    for each."""
    seen_paths: set[str] = set()
    queue, texts = [f"{url}/ui/"], {}
    while queue and len(texts) < MAX_PAGES:
        target = queue.pop(0)
        path = urlsplit(target).path
        if path in seen_paths:
            continue
        seen_paths.add(path)
        answer = page.goto(target)
        assert answer.status == 200, f"{target}: {answer.status}"
        check_page(page, target, problems, shots)
        texts[target] = page.content()
        queue += [link for link in links(page, url) if urlsplit(link).path not in seen_paths]
    return texts


def test_every_page_as_site_admin_passes_axe_and_is_saved(server, dashboard_world, tmp_path):
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    with chromium_page(tmp_path / "profile") as (page, problems):
        page.set_viewport_size({"width": 1280, "height": 900})
        sign_in(page, server, dashboard_world["keys"]["root"])
        texts = crawl(page, server, problems, SHOTS)
        # the pages behind forms: compare two runs, run a monitoring check
        page.goto(f"{server}/ui/runs")
        page.locator("input[type=checkbox]").nth(0).check()
        page.locator("input[type=checkbox]").nth(1).check()
        page.get_by_role("button", name="Compare selected").click()
        page.wait_for_url(re.compile(r"/ui/runs/compare\?"))
        assert page.locator("h1").inner_text().lower().startswith("compar")
        check_page(page, f"{server}/ui/runs/compare", problems, SHOTS)
        page.goto(f"{server}/ui/monitoring/{ALPHA}")
        page.get_by_role("button", name="Run a check now").click()
        page.wait_for_url(re.compile(r"/check"))
        assert "drift" in page.locator("main").inner_text().lower()
        check_page(page, f"{server}/ui/monitoring/{ALPHA}/check", problems, SHOTS)
    visited = {urlsplit(u).path for u in texts}
    for section in ("/ui/runs", "/ui/models", "/ui/monitoring", "/ui/serving", "/ui/data"):
        assert section in visited, f"no link led to {section}: {sorted(visited)}"
    assert "/ui/admin" in visited
    assert f"/ui/models/{ALPHA}" in visited
    assert any(p.startswith("/ui/runs/") for p in visited), sorted(visited)
    assert len(visited) >= 12, sorted(visited)


def test_promote_in_the_ui_moves_the_alias_the_api_resolves(server, dashboard_world, tmp_path):
    keys = dashboard_world["keys"]
    api = {"X-API-Key": keys["eve"]}
    metadata = f"{server}/v1/models/{ALPHA}/metadata?alias=production"
    assert httpx.get(metadata, headers=api).status_code == 404
    with chromium_page(tmp_path / "profile") as (page, problems):
        sign_in(page, server, keys["eve"])
        page.get_by_role("link", name="Models").first.click()
        page.get_by_role("link", name=ALPHA).first.click()
        form = page.locator("form", has=page.get_by_role("button", name=re.compile("Promote")))
        form.get_by_label(re.compile("[Vv]ersion")).select_option("1")
        form.get_by_label(re.compile("[Aa]lias")).fill("production")
        form.get_by_role("button", name=re.compile("Promote")).click()
        confirm = page.get_by_role("button", name=re.compile("^Yes"))
        if confirm.count():  # a confirmation step is fine too
            confirm.first.click()
        page.wait_for_load_state()
        assert eventually(lambda: httpx.get(metadata, headers=api).json().get("version")) == 1
        # remove it again, through the confirmation page
        remove = page.locator("form", has=page.get_by_role("button", name=re.compile("Remove")))
        remove.first.get_by_role("button", name=re.compile("Remove")).click()
        page.get_by_role("button", name=re.compile("^Yes")).first.click()
        page.wait_for_load_state()
        assert eventually(lambda: httpx.get(metadata, headers=api).status_code == 404)
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(re.compile(r"/ui/sign-in"))
        page.goto(f"{server}/ui/models")
        assert "/ui/sign-in" in page.url
        assert not problems, problems
    audit = httpx.get(f"{server}/v1/projects/alpha/audit", headers={"X-API-Key": keys["ada"]})
    actions = [(e["actor"], e["action"]) for e in audit.json()["audit"]]
    assert ("eve", "promote") in actions and ("eve", "unalias") in actions


def test_a_viewer_has_no_promote_button_and_a_forced_post_is_403(server, dashboard_world, tmp_path):
    keys = dashboard_world["keys"]
    with chromium_page(tmp_path / "profile") as (page, problems):
        sign_in(page, server, keys["vic"])
        page.goto(f"{server}/ui/models/{ALPHA}")
        assert page.get_by_role("button", name=re.compile("Promote")).count() == 0
        token = page.locator("input[name=csrf]").first.get_attribute("value")
        forced = page.request.post(
            f"{server}/ui/models/{ALPHA}/promote",
            form={"csrf": token, "version": "1", "alias": "production", "confirm": "yes"},
        )
        assert forced.status == 403
        no_csrf = page.request.post(
            f"{server}/ui/models/{ALPHA}/promote",
            form={"version": "1", "alias": "production", "confirm": "yes"},
        )
        assert no_csrf.status == 403
    metadata = f"{server}/v1/models/{ALPHA}/metadata?alias=production"
    assert httpx.get(metadata, headers={"X-API-Key": keys["ada"]}).status_code == 404


@pytest.mark.parametrize(("user", "foreign"), [("vic", "beta"), ("bea", "alpha")])
def test_a_user_never_sees_another_projects_names(server, dashboard_world, tmp_path, user, foreign):
    with chromium_page(tmp_path / "profile") as (page, problems):
        sign_in(page, server, dashboard_world["keys"][user])
        texts = crawl(page, server, problems)
        for target, html in texts.items():
            assert foreign not in html, f"{user} saw '{foreign}' on {target}"
        # a foreign model and a made-up one get the same answer: existence never shows
        real = "beta.wine" if foreign == "beta" else ALPHA
        made_up = f"{foreign}.no_such_data"
        for section in ("models", "monitoring", "serving"):
            answers = []
            for name in (real, made_up):
                answer = page.goto(f"{server}/ui/{section}/{name}")
                text = page.locator("main").inner_text().replace(name, "NAME")
                answers.append((answer.status, text))
            assert answers[0] == answers[1] and answers[0][0] == 403, answers


def test_phone_width_and_keyboard(server, dashboard_world, tmp_path):
    with chromium_page(tmp_path / "profile") as (page, problems):
        page.set_viewport_size({"width": 390, "height": 844})
        sign_in(page, server, dashboard_world["keys"]["ada"])
        for path in ("/ui/", "/ui/runs", f"/ui/models/{ALPHA}", "/ui/monitoring"):
            page.goto(f"{server}{path}")
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 1, f"{path} scrolls sideways by {overflow}px at 390px"
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.goto(f"{server}/ui/")
        page.screenshot(path=str(SHOTS / "phone-overview.png"), full_page=True)
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == "main"
        assert not problems, problems


def test_pages_read_and_forms_work_without_javascript(server, dashboard_world, tmp_path):
    with chromium_page(tmp_path / "profile", javascript=False) as (page, problems):
        sign_in(page, server, dashboard_world["keys"]["ada"])
        page.goto(f"{server}/ui/runs?sort=started")
        assert page.locator("table tbody tr").count() >= 3
        page.get_by_label("Family").select_option("lgbm")
        page.get_by_role("button", name="Filter").click()  # a plain GET form
        families = page.locator("table tbody tr").all_inner_texts()
        assert families and all("lgbm" in row for row in families)
        page.goto(f"{server}/ui/monitoring/{ALPHA}")
        # each chart's data is in a table as well
        assert page.locator("table").count() >= 2
        assert "warning" in page.locator("main").inner_text()
        assert not problems, problems
