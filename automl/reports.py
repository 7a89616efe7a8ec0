"""The one report kit: self-contained HTML pages with tables and matplotlib figures.

Every report (the ingest data profile, the monitoring drift report) is built from these
parts, so that they share one stylesheet, one way of escaping, one figure format and one
way of being published:

- :func:`esc` escapes any value; :class:`Html` marks text that is already HTML. Table
  cells, captions and headings go through :func:`esc`, so a data value is never written
  unescaped by mistake.
- :func:`page` is the skeleton (one stylesheet, no script, nothing fetched from a network).
- :func:`table` and :func:`fields` are the tables (numbers right-aligned).
- :func:`figure` makes a pyplot-free Agg figure; :func:`save_figure` writes it as a file
  beside the page, :func:`embed_figure` inlines it as a data URI; :func:`figure_html`
  shows either.
- :func:`staged_report` builds a report folder in a staging folder and publishes it with
  :mod:`automl.atomic`: the page last, so a crash leaves the earlier report whole.
"""

from __future__ import annotations

import base64
import html
import io
import re
import struct
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path
from typing import Any
from urllib.parse import quote

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from automl.atomic import discard, publish, temp_path

DPI = 80  # every figure of every report
FORMAT = "png"
MIME = "image/png"
COLORS = ("#4c72b0", "#dd8452")  # first and second series

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto;
  max-width: 1100px; padding: 1rem 2rem; color: #222; line-height: 1.4; }
h1 { font-size: 1.6rem; border-bottom: 2px solid #4c72b0; padding-bottom: .3rem;
  overflow-wrap: anywhere; }
h2 { font-size: 1.25rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
h3 { font-size: 1.05rem; }
nav a { margin-right: .8rem; }
table { border-collapse: collapse; margin: .5rem 0; font-size: .9rem; }
th, td { border: 1px solid #ccc; padding: .25rem .5rem; text-align: left; vertical-align: top;
  overflow-wrap: break-word; }
th { background: #f0f3f8; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.muted td { color: #777; }
tr.strong td { font-weight: 600; }
tr.flagged td { background: #fdf0ef; }
.ok { color: #1a7f37; }
.warn { color: #9a6700; font-weight: 600; }
.bad { color: #b3261e; font-weight: 600; }
.note { color: #555; font-size: .9rem; }
code { background: #f4f4f4; padding: 0 .2rem; white-space: pre-wrap; }
.plots { display: flex; flex-wrap: wrap; gap: 1rem; align-items: flex-start; }
figure { margin: 0; }
figcaption { font-size: .8rem; color: #555; max-width: 512px; overflow-wrap: anywhere; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
"""


# --------------------------------------------------------------------------- text


class Html(str):
    """Text that is already HTML: :func:`esc` passes it through unchanged."""


def esc(value: Any) -> Html:
    """``value`` as HTML text: escaped (quotes too) unless it is :class:`Html`; None is ''."""
    if isinstance(value, Html):
        return value
    return Html(html.escape("" if value is None else str(value), quote=True))


def code(value: Any) -> Html:
    """``value`` as inline code."""
    return Html(f"<code>{esc(value)}</code>")


def span(value: Any, cls: str) -> Html:
    """``value`` in a span of class ``cls`` (one of the stylesheet's: ok, warn, bad, note)."""
    return Html(f'<span class="{esc(cls)}">{esc(value)}</span>')


def number(value: Any, digits: int = 4) -> str:
    """A number for a table: integers with thousands separators, floats to ``digits``
    significant digits, None as a dash; anything else as its text."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, Integral):
        return f"{int(value):,}"
    if isinstance(value, Real):
        return f"{float(value):.{digits}g}"
    return str(value)


def percent(value: float) -> str:
    """A percentage (``value`` in percent): one decimal, two below 0.1%."""
    return f"{value:.1f}%" if value == 0 or value >= 0.1 else f"{value:.2f}%"


# --------------------------------------------------------------------------- page


def page(title: str, body: Iterable[str], nav: Sequence[tuple[str, str]] = ()) -> str:
    """A whole self-contained page: ``title`` (plain text) as its title and heading, links
    to the sections in ``nav`` (id, label), then the ``body`` parts (HTML)."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',
        f"<title>{esc(title)}</title>",
        f"<style>{STYLE}</style>",
        "</head>",
        "<body>",
        f"<h1>{esc(title)}</h1>",
    ]
    if nav:
        links = "".join(f'<a href="#{esc(i)}">{esc(label)}</a>' for i, label in nav)
        parts.append(f"<nav>{links}</nav>")
    parts += [*body, "</body>", "</html>", ""]
    return "\n".join(parts)


def section(section_id: str, heading: Any, *parts: str) -> str:
    """A section with an id (a link target of the page's nav) and an h2 heading."""
    return "\n".join(
        [f"<section{attrs(section_id)}>", f"<h2>{esc(heading)}</h2>", *parts, "</section>"]
    )


def attrs(element_id: str = "", cls: str = "") -> str:
    """An element's id and class attributes (each left out when empty)."""
    return (f' id="{esc(element_id)}"' if element_id else "") + (
        f' class="{esc(cls)}"' if cls else ""
    )


def paragraph(text: Any, cls: str = "", element_id: str = "") -> str:
    """One paragraph, with an optional class and id."""
    return f"<p{attrs(element_id, cls)}>{esc(text)}</p>"


def table(
    headers: Sequence[Any],
    rows: Iterable[Sequence[Any]],
    numeric: Iterable[int] = (),
    classes: Sequence[str] | None = None,
    table_id: str = "",
) -> str:
    """A table; every cell goes through :func:`esc`. Columns in ``numeric`` are aligned
    right; ``classes`` gives each body row a class (stylesheet: muted, strong, flagged)."""
    right = set(numeric)
    out = [f"<table{attrs(table_id)}>", "<thead><tr>", *(f"<th>{esc(h)}</th>" for h in headers)]
    out.append("</tr></thead><tbody>")
    for i, row in enumerate(rows):
        cls = attrs(cls=classes[i]) if classes else ""
        cells = "".join(
            f'<td class="num">{esc(c)}</td>' if j in right else f"<td>{esc(c)}</td>"
            for j, c in enumerate(row)
        )
        out.append(f"<tr{cls}>{cells}</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def fields(pairs: Iterable[tuple[Any, Any]], table_id: str = "") -> str:
    """A two-column table of names (row headers) and values; both go through :func:`esc`."""
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in pairs)
    return f"<table{attrs(table_id)}><tbody>{rows}</tbody></table>"


# --------------------------------------------------------------------------- figures


@dataclass
class Image:
    """A rendered figure: ``src`` is a path relative to the page, or a data URI."""

    src: str
    caption: str
    width: int
    height: int
    alt: str = ""


def figure(width: float, height: float) -> Figure:
    """A new figure (inches) drawn by Agg, outside pyplot: nothing to close, no global state."""
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def margins(fig: Figure, left: float, bottom: float, top: float = 0.4, right: float = 0.25):
    """Fixed margins in inches (much faster than tight_layout)."""
    width, height = fig.get_size_inches()
    fig.subplots_adjust(
        left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height
    )


def plot_label(value: Any, width: int = 30) -> str:
    """Text for a plot: one line, at most ``width`` characters, no mathtext."""
    text = " ".join(str(value).split())
    if len(text) > width:
        text = text[: width - 1] + "…"
    return text.replace("$", r"\$")


def render(fig: Figure) -> bytes:
    """The figure as image bytes (the one format and resolution); the figure is cleared."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format=FORMAT, dpi=DPI)
    fig.clear()
    return buffer.getvalue()


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG, from its header."""
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def save_figure(fig: Figure, root: Path, relative: str, caption: str, alt: str = "") -> Image:
    """Render ``fig`` to ``root/relative`` (a file of a staged report folder)."""
    data = render(fig)
    (root / relative).write_bytes(data)
    return Image(quote(relative), caption, *png_size(data), alt=alt)


def embed_figure(fig: Figure, caption: str, alt: str = "") -> Image:
    """Render ``fig`` into a data URI, for a page that is one file."""
    data = render(fig)
    uri = f"data:{MIME};base64,{base64.b64encode(data).decode('ascii')}"
    return Image(uri, caption, *png_size(data), alt=alt)


def figure_html(image: Image) -> str:
    """The image with its caption (the caption is its alt text unless it has one)."""
    return (
        f'<figure><img src="{esc(image.src)}" alt="{esc(image.alt or image.caption)}" '
        f'width="{image.width}" height="{image.height}">'
        f"<figcaption>{esc(image.caption)}</figcaption></figure>"
    )


def figures(images: Iterable[Image]) -> str:
    """Figures side by side, wrapping."""
    return "\n".join(['<div class="plots">', *map(figure_html, images), "</div>"])


# --------------------------------------------------------------------------- publishing


@contextmanager
def staged_report(
    out_dir: Path, last: Sequence[str] = (), owned: re.Pattern[str] | None = None
) -> Iterator[Path]:
    """Yield an empty staging folder beside ``out_dir``; once it is written, publish it.

    A new ``out_dir`` is one rename. An existing one is updated file by file, each an
    atomic replace: files in subfolders first, then the others, then ``last`` (the pages,
    in that order), so the page never links to a missing file. Files of the earlier report
    that the new one lacks are removed when their path (relative, with ``/``) fully
    matches ``owned``; other files in ``out_dir`` are left alone. On any error the staging
    folder is removed and ``out_dir`` is untouched.
    """
    out_dir = Path(out_dir)
    staging = temp_path(out_dir, directory=True)
    try:
        yield staging
        publish_folder(staging, out_dir, last, owned)
    finally:
        discard(staging)


def publish_folder(
    staging: Path, out_dir: Path, last: Sequence[str] = (), owned: re.Pattern[str] | None = None
) -> None:
    """Move the files of a finished ``staging`` folder into ``out_dir`` (see
    :func:`staged_report`)."""
    try:
        publish(staging, out_dir)
        return
    except OSError:
        if not out_dir.is_dir():
            raise
    new = [p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file()]

    def order(rel: str) -> tuple[int, int, str]:
        rank = last.index(rel) + 1 if rel in last else 0
        return rank, -rel.count("/"), rel

    for rel in sorted(new, key=order):
        target = out_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        publish(staging / rel, target)
    if owned is None:
        return
    for old in out_dir.rglob("*"):
        rel = old.relative_to(out_dir).as_posix()
        if rel not in new and old.is_file() and owned.fullmatch(rel):
            old.unlink(missing_ok=True)
