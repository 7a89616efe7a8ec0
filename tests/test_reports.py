"""The report kit: escaping, tables, figures and publishing a report folder in place."""

from __future__ import annotations

import re

import pytest

from automl import reports

NAME = "<script>alert(1)</script>"


def test_escaping_and_tables():
    assert reports.esc(NAME) == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert reports.esc(None) == "" and reports.esc("'\"") == "&#x27;&quot;"
    marked = reports.code(NAME)  # already HTML: not escaped twice
    assert reports.esc(marked) == marked == f"<code>{reports.esc(NAME)}</code>"
    html = reports.table(["name", "n"], [[NAME, reports.number(12345)]], {1}, ["flagged"], "t")
    assert NAME not in html and reports.esc(NAME) in html
    assert '<table id="t">' in html and '<tr class="flagged">' in html
    assert '<td class="num">12,345</td>' in html
    assert NAME not in reports.fields([(NAME, NAME)]) and NAME not in reports.section("s", NAME)
    page = reports.page(NAME, ["<p>x</p>"], [("s", NAME)])
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page


def test_numbers():
    assert reports.number(None) == "–" and reports.number(True) == "True"
    assert reports.number(1234567) == "1,234,567" and reports.number(0.123456) == "0.1235"
    assert reports.percent(0) == "0.0%" and reports.percent(0.05) == "0.05%"
    assert reports.percent(12.345) == "12.3%"


def test_figures_saved_and_embedded(tmp_path):
    fig = reports.figure(4, 2)
    fig.add_subplot().set_title(reports.plot_label("$x$ " + "y" * 40))
    (tmp_path / "plots").mkdir()
    saved = reports.save_figure(fig, tmp_path, "plots/a b.png", NAME)
    assert saved.src == "plots/a%20b.png"
    assert (saved.width, saved.height) == (4 * reports.DPI, 2 * reports.DPI)
    assert (tmp_path / "plots" / "a b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    embedded = reports.embed_figure(reports.figure(3, 2), "c", alt=NAME)
    assert embedded.src.startswith("data:image/png;base64,") and embedded.width == 240
    html = reports.figures([saved, embedded])
    assert NAME not in html and html.count("<figure>") == 2


def write(root, files):
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def contents(root):
    return {p.relative_to(root).as_posix(): p.read_text() for p in root.rglob("*") if p.is_file()}


def test_staged_report_replaces_in_place(tmp_path, monkeypatch):
    """A new folder appears whole; a second report replaces the first file by file, removes
    the stale files it owns and keeps the others; a crash changes nothing."""
    out = tmp_path / "r"
    owned = re.compile(r"plots/p\d\.png")
    with reports.staged_report(out, last=["index.html"], owned=owned) as root:
        write(root, {"index.html": "1", "plots/p1.png": "1", "plots/p2.png": "1"})
    assert contents(out) == {"index.html": "1", "plots/p1.png": "1", "plots/p2.png": "1"}
    write(out, {"notes.txt": "mine", "plots/mine.png": "mine"})
    order = []
    publish = reports.publish
    monkeypatch.setattr(
        reports, "publish", lambda tmp, path: order.append(path) or publish(tmp, path)
    )
    with reports.staged_report(out, last=["index.md", "index.html"], owned=owned) as root:
        write(root, {"index.html": "2", "index.md": "2", "a.txt": "2", "plots/p1.png": "2"})
    assert [p.relative_to(out).as_posix() for p in order[1:]] == [  # after the folder's try
        "plots/p1.png",
        "a.txt",
        "index.md",
        "index.html",
    ]
    assert contents(out) == {
        "index.html": "2",
        "index.md": "2",
        "a.txt": "2",
        "plots/p1.png": "2",
        "notes.txt": "mine",
        "plots/mine.png": "mine",
    }
    with pytest.raises(RuntimeError), reports.staged_report(out, owned=owned) as root:
        write(root, {"index.html": "3"})
        raise RuntimeError("disk full")
    assert contents(out)["index.html"] == "2"
    assert [p.name for p in tmp_path.iterdir()] == ["r"]  # no staging folder left
