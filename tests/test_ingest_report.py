"""The data profile report of `python -m automl.ingest`: findings, HTML, Markdown, browser."""

from __future__ import annotations

import html
import re
import shutil
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from browser import CHROMIUM, CHROMIUM_ARGS, chromium_page
from helpers import ADULT_COLUMNS, SHARED_DATA, needs_shared_data

from automl.ingest import profile_report
from automl.ingest.infer import Limits, coerce, infer_kinds
from automl.ingest.profile_report import write_report

ABALONE_COLUMNS = [
    "sex",
    "length",
    "diameter",
    "height",
    "whole_weight",
    "shucked_weight",
    "viscera_weight",
    "shell_weight",
    "rings",
]
LEAKY = 'leaky <&"score">'  # a name that must be escaped in HTML
ID = "row_id"
VOID = {"meta", "link", "img", "br", "hr", "input", "col", "area", "base", "source", "wbr"}


# --------------------------------------------------------------------------- helpers


def typed(raw: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """The canonical typed frame and its kinds, as `python -m automl.ingest` makes them."""
    kinds = infer_kinds(raw, Limits())
    frame, _ = coerce(raw, kinds)
    return frame, kinds


def read_adult(rows: int = 5000, seed: int = 0) -> pd.DataFrame:
    raw = pd.read_csv(
        SHARED_DATA / "adult-train.csv",
        header=None,
        names=ADULT_COLUMNS,
        skipinitialspace=True,
        na_values="?",
    )
    return raw.sample(rows, random_state=seed).reset_index(drop=True)


class Page(HTMLParser):
    """Checks that tags are balanced and collects tables (by id), images and links."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[str] = []
        self.links: list[str] = []
        self.tags: set[str] = set()
        self.ids: list[str] = []
        self._table: list[list[str]] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        for key in ("href", "src"):
            if key in attrs and tag != "img":
                self.links.append(attrs[key])
        if tag == "table":
            self._table = self.tables.setdefault(attrs.get("id", f"table{len(self.tables)}"), [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._table:
            self._table[-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def parse_html(path: Path) -> tuple[str, Page]:
    text = path.read_text(encoding="utf-8")
    page = Page()
    page.feed(text)
    page.close()
    return text, page


def table_dict(rows: list[list[str]], key: int = 0) -> dict[str, list[str]]:
    """Body rows of a table by the text of their ``key`` cell."""
    return {row[key]: row for row in rows[1:]}


def md_section(text: str, heading: str) -> str:
    """The text of a Markdown section, from its heading to the next of the same level."""
    level = heading.split(" ")[0]
    start = text.index(heading + "\n")
    rest = text[start + len(heading) :]
    end = re.search(rf"^{level} ", rest, flags=re.M)
    return rest[: end.start()] if end else rest


def md_unescape(cell: str) -> str:
    cell = cell.strip()
    match = re.fullmatch(r"(`+) ?(.*?) ?\1", cell)
    if match:  # a code span: only the table's pipe escape applies
        return match.group(2).replace("\\|", "|")
    return re.sub(r"\\(.)", r"\1", cell)


def md_tables(text: str) -> list[list[list[str]]]:
    """Every pipe table in ``text``: rows of unescaped cells, the separator row left out."""
    tables, current = [], None
    for line in text.splitlines():
        if line.startswith("|"):
            cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
            if all(re.fullmatch(r"-+:?", c.strip()) for c in cells):
                continue
            if current is None:
                current = []
                tables.append(current)
            current.append([md_unescape(c) for c in cells])
        else:
            current = None
    return tables


def check_static_html(path: Path) -> Page:
    """Valid, self-contained HTML whose every image is a file beside it."""
    text, page = parse_html(path)
    assert text.startswith("<!DOCTYPE html>")
    assert not page.errors, page.errors[:5]
    assert not page.stack, f"unclosed tags: {page.stack}"
    assert "script" not in page.tags
    assert len(page.ids) == len(set(page.ids)), "duplicate element ids"
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", text, flags=re.I)
    assert "@import" not in text and "url(" not in text
    for link in page.links:
        assert link.startswith(("#", "data:")), link
    assert page.images
    for src in page.images:
        assert src.startswith("plots/") and src.endswith(".png"), src
        file = path.parent / src
        assert file.is_file() and file.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", src
    return page


# --------------------------------------------------------------------------- adult


@pytest.fixture(scope="module")
def adult(tmp_path_factory):
    """A 5,000-row adult sample plus a leaky column and an id column, and its report."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    raw = read_adult()
    rng = np.random.default_rng(0)
    leak = (raw["income"] == ">50K").to_numpy(dtype=int)
    flip = rng.random(len(raw)) < 0.01
    leak[flip] = 1 - leak[flip]
    raw[LEAKY] = leak
    raw.insert(0, ID, rng.permutation(len(raw)) + 10_000)
    frame, kinds = typed(raw)
    out = tmp_path_factory.mktemp("reports") / "adult"
    started = time.perf_counter()
    paths = write_report(
        frame, kinds, "income", "binary", out, title="adult <train> & co", total_rows=32_561,
        dropped_kinds=("identifier", "constant"),
    )  # fmt: skip
    seconds = time.perf_counter() - started
    print(f"adult report ({len(frame)} rows, {frame.shape[1]} columns): {seconds:.2f}s")
    return frame, kinds, paths


@needs_shared_data
def test_adult_report_files(adult):
    frame, _, paths = adult
    assert set(paths) == {"html", "markdown"}
    out = paths["html"].parent
    assert paths["markdown"].parent == out
    assert sorted(p.name for p in out.iterdir()) == ["plots", "profile.html", "profile.md"]
    # no temporary folder is left beside the report
    assert [p.name for p in out.parent.iterdir()] == ["adult"]
    page = check_static_html(paths["html"])
    plots = sorted(p.name for p in (out / "plots").iterdir())
    assert sorted(Path(src).name for src in page.images) == plots
    # missingness + target + one per column except the target and the id
    assert len(plots) == 2 + frame.shape[1] - 2


@needs_shared_data
def test_adult_leaky_column_is_the_only_suspect(adult):
    _, _, paths = adult
    _, page = parse_html(paths["html"])
    suspects = table_dict(page.tables["leakage-suspects"])
    assert list(suspects) == [LEAKY]
    assert float(suspects[LEAKY][1]) >= 0.98
    scores = table_dict(page.tables["leakage-scores"])
    genuine = [c for c in ADULT_COLUMNS if c != "income"]
    assert set(genuine) & set(scores)  # genuine features were scored too
    for col, row in scores.items():
        if col != LEAKY:
            assert float(row[1]) < 0.9 and row[2] == "no", row
    # markdown: the same suspect, with the same score
    md = paths["markdown"].read_text(encoding="utf-8")
    md_suspects = md_tables(md_section(md, "## Leakage suspects"))[0]
    assert md_suspects[0] == ["column", "score"]
    assert md_suspects[1:] == [[LEAKY, suspects[LEAKY][1]]]


@needs_shared_data
def test_adult_columns_table(adult):
    frame, _, paths = adult
    _, page = parse_html(paths["html"])
    columns = table_dict(page.tables["columns-table"])
    assert list(columns) == list(frame.columns)
    assert columns[ID][1] == "identifier" and columns[ID][6] == "yes"
    assert columns["income"][6] == "target"
    for col in ADULT_COLUMNS[:-1]:
        assert columns[col][6] == "no", col
    assert columns["age"][1] == "integer" and columns["workclass"][1] == "categorical"
    for col, row in columns.items():  # missing %, count, distinct values
        missing = int(frame[col].isna().sum())
        assert row[3] == f"{100 * missing / len(frame):.1f}%", col
        assert int(row[4].replace(",", "")) == missing, col
        assert int(row[5].replace(",", "")) == frame[col].nunique(), col
    assert int(columns["workclass"][4].replace(",", "")) > 0
    summary = table_dict([[""], *page.tables["summary-table"]])
    assert summary["Rows profiled"][1] == "5,000 of 32,561 (a sample)"
    assert summary["Task"][1] == "binary" and summary["Target"][1] == "income"
    assert summary["Dropped from features"][1] == "1"
    # markdown: the same table
    md = paths["markdown"].read_text(encoding="utf-8")
    assert "covers 5,000 of the data's 32,561 rows" in md
    md_columns = md_tables(md_section(md, "## Columns"))[0]
    assert md_columns[0] == ["column", "kind", "why", "missing %", "missing", "distinct", "dropped"]
    html_rows = [row for row in page.tables["columns-table"][1:]]
    assert md_columns[1:] == html_rows


@needs_shared_data
def test_adult_target_balance(adult):
    frame, _, paths = adult
    _, page = parse_html(paths["html"])
    counts = frame["income"].value_counts()
    target = table_dict(page.tables["target-table"])
    assert set(target) == {"<=50K", ">50K"}
    for label, n in counts.items():
        assert int(target[label][1].replace(",", "")) == n
        assert target[label][2] == f"{100 * n / len(frame):.1f}%"
    md = paths["markdown"].read_text(encoding="utf-8")
    md_target = md_tables(md_section(md, "## Target: `income`"))[0]
    assert md_target[1:] == page.tables["target-table"][1:]


@needs_shared_data
def test_adult_html_escapes_names(adult):
    _, _, paths = adult
    text = paths["html"].read_text(encoding="utf-8")
    assert html.escape(LEAKY, quote=True) in text
    assert LEAKY not in text
    assert "<title>Data profile: adult &lt;train&gt; &amp; co</title>" in text


@needs_shared_data
def test_adult_report_in_a_browser(adult, tmp_path):
    """profile.html opens in headless Chromium without console errors, failed requests or
    broken images, and shows its tables."""
    _, _, paths = adult
    with chromium_page(tmp_path / "chromium-profile") as (page, problems):
        page.goto(paths["html"].as_uri(), wait_until="load")
        images = page.eval_on_selector_all(
            "img", "els => els.map(e => [e.getAttribute('src'), e.complete, e.naturalWidth])"
        )
        rows = page.eval_on_selector_all("#columns-table tbody tr", "els => els.length")
        title = page.title()
    assert not problems, problems
    assert len(images) == len(list((paths["html"].parent / "plots").iterdir()))
    broken = [src for src, complete, width in images if not complete or width == 0]
    assert not broken, broken
    assert rows == 17
    assert title == "Data profile: adult <train> & co"


# --------------------------------------------------------------------------- other data


@needs_shared_data
def test_duplicate_rows_counted(tmp_path):
    base = read_adult(300, seed=1)
    base.loc[5, "workclass"] = np.nan  # a duplicate with a missing value
    copies = [5, 17, 17, 200, 299]  # rows repeated at the end: 5 duplicates
    raw = pd.concat([base, base.iloc[copies]], ignore_index=True)
    frame, kinds = typed(raw)
    assert frame.duplicated().sum() == 5  # the sample itself has no other duplicates
    paths = write_report(frame, kinds, "income", "binary", tmp_path / "dups", "dups", max_plots=2)
    _, page = parse_html(paths["html"])
    summary = table_dict([[""], *page.tables["summary-table"]])
    assert summary["Duplicate rows"][1] == f"5 ({100 * 5 / 305:.1f}%)"
    examples = page.tables["duplicate-examples"][1:]
    assert examples == [["300", "5"], ["301", "17"], ["302", "17"], ["303", "200"], ["304", "299"]]
    md = paths["markdown"].read_text(encoding="utf-8")
    section = md_section(md, "## Duplicate rows")
    assert f"5 duplicate rows ({100 * 5 / 305:.1f}% of 305)" in section
    assert md_tables(section)[0][1:] == examples
    # max_plots: 2 distribution plots, the other feature columns listed as not plotted
    assert len(list((tmp_path / "dups" / "plots").glob("dist-*.png"))) == 2
    assert "Not plotted (12)" in paths["html"].read_text(encoding="utf-8")


@needs_shared_data
def test_regression_report_abalone(tmp_path):
    raw = pd.read_csv(SHARED_DATA / "abalone.csv", header=None, names=ABALONE_COLUMNS)
    frame, kinds = typed(raw)
    paths = write_report(frame, kinds, "rings", "regression", tmp_path / "abalone", "abalone")
    page = check_static_html(paths["html"])
    stats = page.tables["target-table"]
    assert stats[0] == ["mean", "std", "min", "median", "max"]
    assert float(stats[1][0]) == pytest.approx(frame["rings"].mean(), rel=1e-3)
    assert (tmp_path / "abalone" / "plots" / "target.png").is_file()
    scores = table_dict(page.tables["leakage-scores"])
    assert "shell_weight" in scores and all(float(r[1]) < 0.98 for r in scores.values())
    assert "No leakage suspects." in paths["html"].read_text(encoding="utf-8")
    md = paths["markdown"].read_text(encoding="utf-8")
    assert "R²" in md_section(md, "## Leakage suspects")
    assert "No leakage suspects." in md


@needs_shared_data
def test_multiclass_report_and_rewrite_in_place(tmp_path):
    """A multiclass target; a second report replaces the first (stale plots removed) and a
    crash while writing leaves the previous report whole."""
    raw = pd.read_csv(SHARED_DATA / "abalone.csv", header=None, names=ABALONE_COLUMNS)
    frame, kinds = typed(raw.iloc[:600])
    out = tmp_path / "abalone"
    write_report(frame, kinds, "sex", "multiclass", out, "abalone sex", max_plots=8)
    assert len(list((out / "plots").glob("dist-*.png"))) == 8
    _, page = parse_html(out / "profile.html")
    assert {row[0] for row in page.tables["target-table"][1:]} == {"M", "F", "I"}
    assert "one-vs-rest" in (out / "profile.html").read_text(encoding="utf-8")

    paths = write_report(frame, kinds, "sex", "multiclass", out, "second", max_plots=3)
    check_static_html(paths["html"])
    assert len(list((out / "plots").glob("dist-*.png"))) == 3
    assert "second" in paths["html"].read_text(encoding="utf-8")

    def crash(profile):
        raise RuntimeError("disk full")

    before = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    original = profile_report.render_html
    profile_report.render_html = crash
    try:
        with pytest.raises(RuntimeError, match="disk full"):
            write_report(frame, kinds, "sex", "multiclass", out, "third", max_plots=1)
    finally:
        profile_report.render_html = original
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["abalone"]


def test_awkward_names_and_kinds(tmp_path):
    """Column names with Markdown/HTML/mathtext characters, dates, booleans, free text, a
    constant and a column with no values; no pyplot figure is left open."""
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    n = 120
    raw = pd.DataFrame(
        {
            "a|b `c` $x$": rng.normal(size=n),
            "when\nnow": pd.date_range("2024-01-01", periods=n, freq="D").astype(str),
            "flag": rng.choice(["yes", "no"], size=n),
            "note": [f"free text number {i % 60} that is long enough to be text" for i in range(n)],
            "same": "x",
            "empty": np.nan,
            "<y>": rng.choice(["p & q", "r"], size=n),
        }
    )
    frame, kinds = typed(raw)
    assert kinds["note"].kind == "text" and kinds["same"].kind == "constant"
    figures_before = plt.get_fignums()
    dropped = ("identifier", "constant")  # ingest's drop_kinds: free text is a feature
    paths = write_report(
        frame, kinds, "<y>", "binary", tmp_path / "odd", "odd", seed=3, dropped_kinds=dropped
    )
    assert plt.get_fignums() == figures_before
    page = check_static_html(paths["html"])
    columns = table_dict(page.tables["columns-table"])
    assert columns["a|b `c` $x$"][1] == "numeric"
    assert columns["when\nnow"][1] == "datetime"
    assert columns["note"][6] == "no" and columns["same"][6] == "yes"
    assert columns["empty"][3] == "100.0%"
    md = paths["markdown"].read_text(encoding="utf-8")
    md_columns = md_tables(md_section(md, "## Columns"))[0]
    assert [row[0] for row in md_columns[1:]] == ["a|b `c` $x$", "when now", *list(frame)[2:]]
    assert all(len(row) == 7 for row in md_columns)
    assert "<y>" not in md.replace("`<y>`", "")  # only inside code spans


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent (make browser)")
def test_screenshot_smoke(tmp_path):
    """Chromium's own command line renders a small report to a PNG (no Playwright)."""
    import subprocess

    frame = pd.DataFrame({"x": np.arange(60.0), "y": ["a", "b", "c"] * 20})
    kinds = infer_kinds(frame, Limits())
    paths = write_report(frame, kinds, "y", "multiclass", tmp_path / "r", "tiny", max_plots=1)
    shot = tmp_path / "shot.png"
    profile = tempfile.mkdtemp(dir=tmp_path)
    subprocess.run(
        [
            str(CHROMIUM),
            *CHROMIUM_ARGS,
            f"--user-data-dir={profile}",
            "--window-size=1200,900",
            f"--screenshot={shot}",
            paths["html"].as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    shutil.rmtree(profile, ignore_errors=True)


SCRIPT = "<script>alert(1)</script>"  # an untrusted column name


def test_script_column_name_is_escaped(tmp_path):
    """A column named like a script tag is shown as text in the page, the plots' captions
    and alt texts, and the Markdown: the page has no script element."""
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {SCRIPT: rng.normal(size=80), "y": rng.choice([SCRIPT, "b"], size=80), "z": 1.0}
    )
    kinds = infer_kinds(frame, Limits())
    paths = write_report(frame, kinds, "y", "binary", tmp_path / "x", title=SCRIPT)
    page = check_static_html(paths["html"])
    text = paths["html"].read_text(encoding="utf-8")
    assert SCRIPT not in text
    assert text.count(html.escape(SCRIPT)) >= 5  # title, heading, table, caption, alt, target
    assert table_dict(page.tables["columns-table"])[SCRIPT][1] == "numeric"
    assert {row[0] for row in page.tables["target-table"][1:]} == {SCRIPT, "b"}
    md = paths["markdown"].read_text(encoding="utf-8")
    assert "<script>" not in md.replace(f"`{SCRIPT}`", "")  # only inside code spans
