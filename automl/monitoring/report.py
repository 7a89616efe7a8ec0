"""The monitoring report: ``report.json`` (the check as it is) and ``report.html`` (tables
and one plot per drifted feature, reference against current, PNGs embedded), both written
to temp files and renamed into place."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import numpy as np

from automl.atomic import write_text
from automl.monitoring.alerts import write_json

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;
text-align:left}th{background:#f3f3f3}.ok{color:#176b2c}.warning{color:#9a6700}
.drift{color:#b3261e}.flag{font-weight:bold;color:#b3261e}figure{display:inline-block;
margin:0 1em 1em 0}figcaption{font-size:.9em;color:#555}
"""
DPI = 80
TOP_CATEGORIES = 15  # bars per categorical plot (the rest are summed)


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def number(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return esc(value)


def figure_png(fig: Any) -> str:
    """A matplotlib figure as a base64 PNG data URI (the figure is closed)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def drift_plot(name: str, hist: dict[str, Any]) -> str:
    """Reference against current: CDFs over the bins (numeric), shares (categorical)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    ref, cur = np.asarray(hist["reference"]), np.asarray(hist["current"])
    if "edges" in hist:
        x = np.concatenate([[hist["low"]], hist["edges"], [hist["high"]]])
        ax.step(x, np.concatenate([[0], np.cumsum(ref)]), where="post", label="reference")
        ax.step(x, np.concatenate([[0], np.cumsum(cur)]), where="post", label="current")
        ax.set_ylabel("cumulative share")
        ax.set_xlabel(name)
    else:
        labels = list(hist["labels"])
        order = np.argsort(-np.maximum(ref, cur))[:TOP_CATEGORIES]
        y = np.arange(len(order))
        ax.barh(y - 0.2, ref[order], height=0.4, label="reference")
        ax.barh(y + 0.2, cur[order], height=0.4, label="current")
        ax.set_yticks(y, [labels[i][:25] for i in order])
        ax.invert_yaxis()
        ax.set_xlabel("share of values")
    ax.set_title(name)
    ax.legend(loc="best", fontsize="small")
    return figure_png(fig)


def signal_cells(col: dict[str, Any]) -> str:
    test = col.get("test") or {}
    missing = col["missing"]
    new = col.get("new_categories")
    cells = [
        esc(col["kind"]),
        esc(test.get("method", test.get("note", ""))),
        number(test.get("statistic")),
        number(test.get("threshold")),
        number(test.get("p_value")),
        f"{number(missing['reference'])} → {number(missing['current'])}",
        f"{number(new['rate'])} ({esc(', '.join(new['examples']))})" if new else "–",
    ]
    flag = "yes" if col["drifted"] else "no"
    cells.append(f"<span class='{'flag' if col['drifted'] else ''}'>{flag}</span>")
    return "".join(f"<td>{c}</td>" for c in cells)


def render_html(report: dict[str, Any], title: str) -> str:
    """The report as one self-contained page."""
    drift = report["drift"]
    status = report["status"]
    summary = [
        ("status", f"<span class='{esc(status)}'>{esc(status)}</span>"),
        ("exit code", esc(report.get("exit_code"))),
        ("model", esc(report.get("model"))),
        ("input", esc(report.get("input", {}).get("path"))),
        ("rows checked", esc(drift["rows"])),
        ("rows rejected (contract)", esc(report.get("input", {}).get("rows_rejected", 0))),
        ("reference rows", esc(drift["reference_rows"])),
        ("share of drifted columns", number(drift["share_drifted"])),
        ("drifted columns", esc(", ".join(drift["drifted_columns"]) or "none")),
        ("signals", esc(", ".join(report.get("signals", [])) or "none")),
    ]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{esc(title)}</h1><table id='summary'>",
        *(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in summary),
        "</table><h2>Columns</h2><table id='columns'><tr><th>column</th><th>kind</th>",
        "<th>test</th><th>statistic</th><th>threshold</th><th>p-value</th>",
        "<th>missing share (reference → current)</th><th>new categories</th><th>drifted</th></tr>",
    ]
    rows = dict(drift["columns"])
    if drift.get("prediction"):
        rows[f"prediction ({drift['prediction']['column']})"] = drift["prediction"]
    for name, col in rows.items():
        parts.append(f"<tr><td>{esc(name)}</td>{signal_cells(col)}</tr>")
    parts.append("</table>")
    performance = report.get("performance")
    if performance:
        parts.append(f"<h2>Performance ({esc(performance['rows'])} labelled rows)</h2>")
        if performance.get("note"):
            parts.append(f"<p>{esc(performance['note'])}</p>")
        parts.append(
            "<table id='performance'><tr><th>metric</th><th>test set</th><th>current</th>"
            "<th>degradation</th><th>tolerance</th><th>degraded</th></tr>"
        )
        for name, m in performance["metrics"].items():
            cells = [name, m["reference"], m["current"], m.get("degradation"), m["tolerance"]]
            parts.append(
                "<tr>"
                + "".join(f"<td>{number(c)}</td>" for c in cells)
                + f"<td>{'yes' if m['degraded'] else 'no'}</td></tr>"
            )
        parts.append("</table>")
    plotted = [(n, c) for n, c in rows.items() if c["drifted"] and c.get("histogram")]
    if plotted:
        parts.append("<h2>Drifted features: reference against current</h2>")
    for name, col in plotted:
        uri = drift_plot(name, col["histogram"])
        why = ", ".join(col["reasons"])
        parts.append(
            f"<figure><img src='{uri}' alt='{esc(name)}: reference against current'>"
            f"<figcaption>{esc(name)}: {esc(why)}</figcaption></figure>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(report: dict[str, Any], out_dir: Path, title: str) -> tuple[Path, Path]:
    """``report.json`` and ``report.html`` in ``out_dir`` (each renamed into place)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out_dir / "report.json", out_dir / "report.html"
    write_text(html_path, render_html(report, title))
    write_json(json_path, report)
    return json_path, html_path
