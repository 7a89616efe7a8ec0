"""The drift report of `python -m automl.monitor`: ``report.json`` (the check as it is) and
``report.html`` (one self-contained page built on :mod:`automl.reports`: tables, and one
plot per drifted feature, reference against current, embedded), each written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from automl.atomic import write_text
from automl.monitoring.alerts import write_json
from automl.reports import (
    COLORS,
    embed_figure,
    fields,
    figure,
    figures,
    margins,
    number,
    page,
    paragraph,
    percent,
    plot_label,
    section,
    span,
    table,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TOP_CATEGORIES = 15  # bars per categorical plot
STATUS_CLASS = {"ok": "ok", "warning": "warn", "drift": "bad"}
COLUMN_HEADERS = [
    "column",
    "kind",
    "test",
    "statistic",
    "threshold",
    "p-value",
    "missing (reference → current)",
    "new categories",
    "drifted",
]
PERFORMANCE_HEADERS = ["metric", "test set", "current", "degradation", "tolerance", "degraded"]


def share(value: float | None) -> str:
    """A share (0 to 1) as a percentage; None as a dash."""
    return number(None) if value is None else percent(100 * value)


def drift_plot(name: str, hist: dict[str, Any]) -> Figure:
    """Reference against current: CDFs over the bins (numeric), shares (categorical)."""
    ref, cur = np.asarray(hist["reference"]), np.asarray(hist["current"])
    if "edges" in hist:
        fig = figure(6, 3.2)
        ax = fig.add_subplot()
        x = np.concatenate([[hist["low"]], hist["edges"], [hist["high"]]])
        for values, label, color in ((ref, "reference", COLORS[0]), (cur, "current", COLORS[1])):
            cdf = np.concatenate([[0], np.cumsum(values)])
            ax.step(x, cdf, where="post", label=label, color=color)
        ax.set_ylabel("cumulative share")
        ax.set_xlabel(plot_label(name))
        margins(fig, left=0.8, bottom=0.6)
    else:
        order = np.argsort(-np.maximum(ref, cur))[:TOP_CATEGORIES]
        fig = figure(6, 0.3 * len(order) + 1.4)
        ax = fig.add_subplot()
        y = np.arange(len(order))
        ax.barh(y - 0.2, ref[order], height=0.4, label="reference", color=COLORS[0])
        ax.barh(y + 0.2, cur[order], height=0.4, label="current", color=COLORS[1])
        labels = [plot_label(hist["labels"][i], 25) for i in order]
        ax.set_yticks(y, labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("share of values")
        longest = max((len(t) for t in labels), default=1)
        margins(fig, left=min(2.2, 0.3 + 0.065 * longest), bottom=0.6)
    ax.set_title(plot_label(name, 60))
    ax.legend(loc="best", fontsize="small")
    return fig


def column_row(name: str, col: dict[str, Any]) -> list[Any]:
    """One row of the columns table."""
    test = col.get("test") or {}
    missing = col["missing"]
    new = col.get("new_categories")
    new_cell = "–"
    if new:
        examples = ", ".join(new["examples"])
        new_cell = share(new["rate"]) + (f" ({examples})" if examples else "")
    return [
        name,
        col["kind"],
        test.get("method", test.get("note", "")),
        number(test.get("statistic")),
        number(test.get("threshold")),
        number(test.get("p_value")),
        f"{share(missing['reference'])} → {share(missing['current'])}",
        new_cell,
        span("yes", "bad") if col["drifted"] else "no",
    ]


def performance_html(performance: dict[str, Any]) -> str:
    """The performance section: labelled rows' metrics against the test set's."""
    parts = []
    if performance.get("note"):
        parts.append(paragraph(performance["note"], "note"))
    rows = [
        [
            name,
            number(m["reference"]),
            number(m["current"]),
            number(m.get("degradation")),
            number(m["tolerance"]),
            span("yes", "bad") if m["degraded"] else "no",
        ]
        for name, m in performance["metrics"].items()
    ]
    parts.append(table(PERFORMANCE_HEADERS, rows, {1, 2, 3, 4}, table_id="performance"))
    heading = f"Performance ({number(performance['rows'])} labelled rows)"
    return section("performance-section", heading, *parts)


def render_html(report: dict[str, Any], title: str) -> str:
    """The report as one self-contained page."""
    drift = report["drift"]
    status = report["status"]
    source = report.get("input", {})
    summary = [
        ("status", span(status, STATUS_CLASS.get(status, ""))),
        ("exit code", report.get("exit_code")),
        ("model", report.get("model")),
        ("input", source.get("path")),
        ("rows checked", number(drift["rows"])),
        ("rows rejected (contract)", number(source.get("rows_rejected", 0))),
        ("reference rows", number(drift["reference_rows"])),
        ("share of drifted columns", share(drift["share_drifted"])),
        ("drifted columns", ", ".join(drift["drifted_columns"]) or "none"),
        ("signals", ", ".join(report.get("signals", [])) or "none"),
    ]
    rows = dict(drift["columns"])
    if drift.get("prediction"):
        rows[f"prediction ({drift['prediction']['column']})"] = drift["prediction"]
    body = [
        section("summary-section", "Summary", fields(summary, "summary")),
        section(
            "columns-section",
            "Columns",
            table(
                COLUMN_HEADERS,
                [column_row(name, col) for name, col in rows.items()],
                {3, 4, 5},
                classes=["flagged" if col["drifted"] else "" for col in rows.values()],
                table_id="columns",
            ),
        ),
    ]
    if report.get("performance"):
        body.append(performance_html(report["performance"]))
    plotted = [
        embed_figure(
            drift_plot(name, col["histogram"]),
            f"{name}: {', '.join(col['reasons'])}",
            alt=f"{name}: reference against current",
        )
        for name, col in rows.items()
        if col["drifted"] and col.get("histogram")
    ]
    if plotted:
        heading = "Drifted features: reference against current"
        body.append(section("plots-section", heading, figures(plotted)))
    nav = [("summary-section", "Summary"), ("columns-section", "Columns")]
    if report.get("performance"):
        nav.append(("performance-section", "Performance"))
    if plotted:
        nav.append(("plots-section", "Plots"))
    return page(title, body, nav)


def write_report(report: dict[str, Any], out_dir: Path, title: str) -> tuple[Path, Path]:
    """``report.json`` and ``report.html`` in ``out_dir`` (each renamed into place)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out_dir / "report.json", out_dir / "report.html"
    write_text(html_path, render_html(report, title))
    write_json(json_path, report)
    return json_path, html_path
