"""The model card of a bundle: what the model is, what it was trained on, how well it does
on the test rows (with bootstrap intervals, by slice, calibration) and what it is for.

In the spirit of Hugging Face model cards and Google's Model Card Toolkit. Pure: builds
the card as plain data (:func:`build_card`), renders it as Markdown (:func:`render_markdown`)
and returns the bundle's card files (:func:`card_files`); the caller writes them. Every
string that comes from data or config (column names, category values, descriptions) goes
through :func:`md` before it reaches the Markdown.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve

from automl.errors import ConfigError
from automl.evaluation.metrics import Recorded, bootstrap_intervals, score_each
from automl.evaluation.plots import calibration_png
from automl.plain import jsonable
from automl.redact import redact

CARD_MD = "model_card.md"
CARD_JSON = "model_card.json"
CALIBRATION_PNG = "calibration.png"
LEVEL = 0.95
TOP_VALUES = 10  # a categorical slice column: its commonest values, the rest as "other"
BINS = 4  # a numeric slice column: quantile bins
CALIBRATION_BINS = 10
TOP_FEATURES = 15
MAX_COLUMNS = 100  # columns of the contract listed in the Markdown (the JSON has all)
NOT_STATED = "Not stated (set `dataset.{key}` in the data set's YAML)."

# Markdown's inline punctuation, escaped with a backslash wherever it is; what starts a
# block (a heading, a list item, a rule) escaped at the start; HTML's three specials as
# entities; any run of whitespace (newlines too) as one space
MD_INLINE = re.compile(r"([\\`*_\[\]|~])")
MD_BLOCK = re.compile(r"^(\d*)(#|[-+=](?=[\s=-]|$)|(?<=\d)[.)](?=\s|$))")


def md(value: Any) -> str:
    """``value`` as inert Markdown text: one line, no markup, no HTML, safe in a table cell."""
    text = " ".join(str(value).split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return MD_BLOCK.sub(r"\1\\\2", MD_INLINE.sub(r"\\\1", text))


def build_card(
    manifest: dict[str, Any],
    *,
    recorded: Recorded,
    y: np.ndarray,
    test: pd.DataFrame,
    run: str,
    slices: Sequence[str] = (),
    importance: pd.DataFrame | None = None,
    bootstrap: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """The card of a model described by its bundle ``manifest``, from its ``recorded``
    predictions on the ``test`` rows (labels ``y``, encoded as in training).

    ``run`` names the training run; ``slices`` are columns of ``test`` to report metrics
    by; ``importance`` a table with ``feature``, ``permutation_mean``, ``permutation_std``
    (None: not computed); ``bootstrap`` resamples (``seed``) make each metric's interval.
    """
    config = manifest.get("config") or {}
    dataset = config.get("dataset") or {}
    report = (config.get("evaluation") or {}).get("report", {}).get(manifest["task"], {})
    classes = manifest.get("classes")
    metrics = manifest.get("metrics") or {}
    return {
        "schema": 1,
        "model_details": model_details(manifest, config, run, metrics),
        "intended_use": dataset.get("intended_use") or "",
        "limitations": dataset.get("limitations") or "",
        "data": data_section(manifest, dataset, len(test)),
        "metrics": {
            "rows": len(test),
            "bootstrap": bootstrap,
            "level": LEVEL,
            "values": bootstrap_intervals(recorded, y, report, bootstrap, seed, LEVEL),
        },
        "slices": [slice_metrics(test, column, recorded, y, report) for column in slices],
        "calibration": None if classes is None else calibration(recorded, y, classes),
        "features": features_section(importance),
    }


def model_details(
    manifest: dict[str, Any], config: dict[str, Any], run: str, metrics: dict[str, Any]
) -> dict[str, Any]:
    params = manifest.get("best_params") or {}
    search = config.get("search") or {}
    return {
        "name": (config.get("registry") or {}).get("name") or manifest["dataset"],
        "family": manifest["model_family"],
        "members": [
            {"family": m["family"], "trial": m.get("trial"), "weight": m["weight"]}
            for m in params.get("members", [])
        ],
        "calibration": manifest.get("calibration"),
        "decision_threshold": manifest.get("decision_threshold"),
        "created_at": manifest.get("created_at"),
        "source_commit": manifest.get("source_commit"),
        "versions": manifest.get("versions") or {},
        "search": {
            "time_budget": search.get("time_budget"),
            "n_trials": search.get("n_trials"),
            "n_jobs": search.get("n_jobs"),
            "threads": config.get("n_jobs"),
            "cv": {k: v for k, v in metrics.items() if k.startswith("cv_")},
        },
        "lineage": {"run": run, "data_fingerprint": manifest.get("data_fingerprint")},
    }


def data_section(manifest: dict[str, Any], dataset: dict[str, Any], test_rows: int) -> dict:
    columns = []
    for name, spec in (manifest.get("contract") or {}).get("columns", {}).items():
        allowed = spec.get("allowed")
        columns.append(
            {
                "name": name,
                "dtype": spec.get("dtype"),
                "nullable": spec.get("nullable"),
                "min": spec.get("min"),
                "max": spec.get("max"),
                "allowed": None if allowed is None else len(allowed),
            }
        )
    return {
        "name": manifest["dataset"],
        "description": dataset.get("description") or "",
        "source": redact(dataset.get("source")),
        "train_rows": manifest.get("train_rows"),
        "test_rows": test_rows,
        "target": manifest["target"],
        "task": manifest["task"],
        "classes": manifest.get("classes"),
        "columns": columns,
    }


def check_slices(slices: Sequence[str], columns: Sequence[str]) -> None:
    """Fail, naming the key, when ``evaluation.slices`` names a column the data lacks."""
    unknown = [c for c in slices if c not in columns]
    if unknown:
        raise ConfigError(
            f"evaluation.slices names {unknown}, not columns of the data set "
            f"(columns: {', '.join(map(str, columns))})"
        )


def slice_rows(column: pd.Series) -> list[tuple[str, str, np.ndarray]]:
    """The slices of ``column``'s rows as (kind, label, boolean mask), together every row
    once: quantile bins of a numeric column with more than ``BINS`` values, else its
    ``TOP_VALUES`` commonest values and the rest ("other"); missing values apart."""
    missing = column.isna().to_numpy()
    binned = pd.api.types.is_numeric_dtype(column) or pd.api.types.is_datetime64_any_dtype(column)
    out = []
    if binned and not pd.api.types.is_bool_dtype(column) and column.nunique() > BINS:
        bins = pd.qcut(column, BINS, duplicates="drop")
        for interval in bins.cat.categories:
            label = f"({number(interval.left)}, {number(interval.right)}]"
            out.append(("bin", label, (bins == interval).to_numpy()))
    else:
        counts = column.value_counts(dropna=True)
        top = counts.index[:TOP_VALUES]
        out += [("value", number(v), (column == v).to_numpy()) for v in top]
        rest = ~missing & ~column.isin(top).to_numpy()
        if rest.any():
            out.append(("other", "other values", rest))
    if missing.any():
        out.append(("missing", "missing", missing))
    return out


def number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float | np.floating) else str(value)


def slice_metrics(
    test: pd.DataFrame, column: str, recorded: Recorded, y: np.ndarray, report: dict[str, str]
) -> dict[str, Any]:
    """The metrics of each slice of ``column`` (see :func:`slice_rows`); a metric not
    defined on a slice (one class only) is None, with the reason."""
    check_slices([column], list(test.columns))
    rows = []
    for kind, label, mask in slice_rows(test[column]):
        values, reasons = score_each(recorded.take(mask), y[mask], report)
        rows.append(
            {
                "kind": kind,
                "value": label,
                "rows": int(mask.sum()),
                "metrics": values,
                "undefined": reasons,
            }
        )
    return {"column": column, "slices": rows}


def calibration(recorded: Recorded, y: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """The reliability curve on the test rows (the positive class, or each class one
    versus the rest) in ``CALIBRATION_BINS`` equal-width bins, with the Brier score."""
    proba = recorded.proba
    assert proba is not None
    which = [len(classes) - 1] if len(classes) == 2 else range(len(classes))
    edges = np.linspace(0.0, 1.0, CALIBRATION_BINS + 1)
    curves = []
    for j in which:
        hit = (y == j).astype(int)
        if hit.min() == hit.max():  # a class absent from (or alone in) the test rows
            continue
        true, predicted = calibration_curve(hit, proba[:, j], n_bins=CALIBRATION_BINS)
        counts = np.bincount(np.searchsorted(edges[1:-1], proba[:, j]), minlength=len(edges) - 1)
        curves.append(
            {
                "class": classes[j],
                "mean_predicted": [float(v) for v in predicted],
                "fraction_positive": [float(v) for v in true],
                "rows": [int(c) for c in counts if c > 0],
            }
        )
    brier, undefined = score_each(recorded, y, {"brier": "neg_brier_score"})
    return {
        "brier": brier["brier"],
        "brier_undefined": undefined.get("brier"),
        "bins": CALIBRATION_BINS,
        "strategy": "uniform",
        "curves": curves,
    }


def features_section(importance: pd.DataFrame | None) -> dict[str, Any]:
    if importance is None:
        return {"computed": False, "top": []}
    top = importance.sort_values("permutation_mean", ascending=False).head(TOP_FEATURES)
    return {
        "computed": True,
        "method": "permutation importance on the test rows",
        "top": [
            {
                "feature": str(row.feature),
                "permutation_mean": float(row.permutation_mean),
                "permutation_std": float(row.permutation_std),
            }
            for row in top.itertuples(index=False)
        ],
    }


# --------------------------------------------------------------------------- Markdown


def fmt(value: Any, digits: int = 4) -> str:
    """A number for the card (``—`` for none)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return f"{value:,}"
    if isinstance(value, float | np.floating):
        return f"{value:.{digits}f}"
    return md(value)


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table; cells are already escaped."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def render_markdown(card: dict[str, Any]) -> str:
    """The card as Markdown (data-derived text escaped by :func:`md`)."""
    details, data = card["model_details"], card["data"]
    lines = [
        f"# Model card: {md(details['name'])}",
        "",
        f"Model family {md(details['family'])}, {md(data['task'])} task: predicts "
        f"{md(data['target'])} of the data set {md(data['name'])}.",
        "",
        "## Model details",
        "",
        *table(["", ""], details_rows(details)),
        "## Intended use",
        "",
        md(card["intended_use"]) or NOT_STATED.format(key="intended_use"),
        "",
        "## Limitations",
        "",
        md(card["limitations"]) or NOT_STATED.format(key="limitations"),
        "",
        *data_lines(data),
        *metrics_lines(card["metrics"]),
        *slices_lines(card["slices"], list(card["metrics"]["values"])),
        *calibration_lines(card["calibration"]),
        *features_lines(card["features"]),
    ]
    return "\n".join(lines).rstrip() + "\n"


def details_rows(details: dict[str, Any]) -> list[list[str]]:
    search, lineage = details["search"], details["lineage"]
    members = ", ".join(
        f"{md(m['family'])} (trial {fmt(m['trial'])}, weight {m['weight']:.3f})"
        for m in details["members"]
    )
    cv = ", ".join(f"{md(k.removeprefix('cv_'))} {fmt(v)}" for k, v in search["cv"].items())
    budget = search["time_budget"]
    return [
        ["Registry name", md(details["name"])],
        ["Family", md(details["family"])],
        ["Members (ensemble weights)", members or "—"],
        ["Calibration", md(details["calibration"] or "none")],
        ["Decision threshold", fmt(details["decision_threshold"])],
        ["Created", fmt(details["created_at"])],
        ["Source commit", fmt(details["source_commit"])],
        [
            "Search budget",
            f"time budget {'none' if budget is None else f'{budget:g} s'}, "
            f"trials {fmt(search['n_trials'])}, {fmt(search['n_jobs'])} at once, "
            f"{fmt(search['threads'])} threads per fit",
        ],
        ["Cross-validated score", cv or "—"],
        ["Run", fmt(lineage["run"])],
        ["Data fingerprint (SHA-256)", fmt(lineage["data_fingerprint"])],
        ["Libraries", ", ".join(f"{md(k)} {md(v)}" for k, v in details["versions"].items())],
    ]


def data_lines(data: dict[str, Any]) -> list[str]:
    source = data["source"] or {}
    shown = {  # where the data came from, not this machine's folders
        k: v
        for k, v in source.items()
        if not isinstance(v, dict | list) and k not in ("_partial_", "data_dir", "cache_dir")
    }
    kind = str(shown.pop("_target_", "")).rsplit(".", 1)[-1]
    where = ", ".join(f"{md(k)}: {md(v)}" for k, v in shown.items() if v is not None)
    classes = data["classes"]
    rows = [
        ["Data set", md(data["name"])],
        ["Description", md(data["description"]) or "—"],
        ["Source", md(kind) + (f" ({where})" if where else "")],
        ["Target", f"{md(data['target'])} ({md(data['task'])})"],
        ["Classes", "—" if classes is None else ", ".join(map(md, classes))],
        ["Training rows", fmt(data["train_rows"])],
        ["Test rows", fmt(data["test_rows"])],
    ]
    columns = [
        [
            md(c["name"]),
            md(c["dtype"]),
            fmt(c["nullable"]),
            "—" if c["min"] is None and c["max"] is None else f"{fmt(c['min'])} to {fmt(c['max'])}",
            fmt(c["allowed"]),
        ]
        for c in data["columns"]
    ]
    more = len(columns) - MAX_COLUMNS
    return [
        "## Data",
        "",
        *table(["", ""], rows),
        "### Columns (the input contract)",
        "",
        *table(["Column", "Type", "Nullable", "Range", "Allowed values"], columns[:MAX_COLUMNS]),
        *([f"And {more} more columns (all in {CARD_JSON}).", ""] if more > 0 else []),
    ]


def metrics_lines(metrics: dict[str, Any]) -> list[str]:
    level = f"{metrics['level']:.0%}"
    rows = [
        [md(name), fmt(v["value"]), f"{fmt(v['low'])} to {fmt(v['high'])}"]
        for name, v in metrics["values"].items()
    ]
    intervals = (
        f"{level} percentile bootstrap intervals from {metrics['bootstrap']} resamples of "
        "the test rows' predictions"
        if metrics["bootstrap"]
        else "no intervals (evaluation.bootstrap=0)"
    )
    return [
        "## Metrics on the test rows",
        "",
        f"{metrics['rows']:,} test rows; {intervals}.",
        "",
        *table(["Metric", "Value", f"{level} interval"], rows),
    ]


def slices_lines(slices: list[dict[str, Any]], names: list[str]) -> list[str]:
    if not slices:
        return []
    lines = ["## Metrics by slice", ""]
    for column in slices:
        rows, notes = [], []
        for s in column["slices"]:
            label = md(s["value"]) if s["kind"] in ("value", "bin") else f"*{s['value']}*"
            rows.append([label, fmt(s["rows"]), *(fmt(s["metrics"][n]) for n in names)])
            for why in dict.fromkeys(s["undefined"].values()):
                metrics = ", ".join(md(n) for n, w in s["undefined"].items() if w == why)
                notes.append(f"- {label}: {metrics}: {md(why)}")
        lines += [f"### {md(column['column'])}", ""]
        lines += table(["Slice", "Rows", *map(md, names)], rows)
        if notes:
            lines += ["Not defined on some slices:", ""]
            lines += [*notes, ""]
    return lines


def calibration_lines(calibration: dict[str, Any] | None) -> list[str]:
    if calibration is None:
        return []
    brier = calibration["brier"]
    lines = [
        "## Calibration",
        "",
        f"Brier score on the test rows: {fmt(brier)}"
        + (f" ({md(calibration['brier_undefined'])})" if brier is None else "")
        + f". Reliability in {calibration['bins']} equal-width bins of the predicted "
        "probability (one class versus the rest):",
        "",
        f"![Calibration on the test rows]({CALIBRATION_PNG})",
        "",
    ]
    for curve in calibration["curves"]:
        rows = [
            [fmt(p), fmt(f), fmt(n)]
            for p, f, n in zip(
                curve["mean_predicted"], curve["fraction_positive"], curve["rows"], strict=True
            )
        ]
        lines += [f"### Class {md(curve['class'])}", ""]
        lines += table(["Mean predicted", "Fraction positive", "Rows"], rows)
    return lines


def features_lines(features: dict[str, Any]) -> list[str]:
    lines = ["## Top features", ""]
    if not features["computed"]:
        return [*lines, "Not computed.", ""]
    rows = [
        [md(f["feature"]), fmt(f["permutation_mean"]), fmt(f["permutation_std"])]
        for f in features["top"]
    ]
    lines += [f"By {md(features['method'])}.", ""]
    return lines + table(["Feature", "Mean", "Std"], rows)


def card_files(card: dict[str, Any]) -> dict[str, bytes | str]:
    """The bundle's files of ``card``: Markdown, its JSON twin and, for a classifier, the
    reliability plot."""
    files: dict[str, bytes | str] = {
        CARD_MD: render_markdown(card),
        CARD_JSON: json.dumps(
            jsonable(card, non_finite=lambda _: None), indent=2, allow_nan=False, default=str
        ),
    }
    if card["calibration"] is not None and card["calibration"]["curves"]:
        files[CALIBRATION_PNG] = calibration_png(card["calibration"])
    return files
