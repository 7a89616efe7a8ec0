"""Batch monitoring: ``python -m automl.monitor model=<ref> input=<file>``.

The file is read in chunks with predict's readers (``formats``), each chunk cleaned and
checked against the model's contract as predict does (rows that break it are counted
with their reasons, not fatal), the valid rows scored; then :func:`verdict` (drift, and
performance when the input has the target column) runs on them, the report is written
(``report.json``, ``report.html``), alerts are sent and the exit status is
``monitoring.exit_codes[status]``. The server's ``GET /v1/models/{name}/monitoring``
gives the same verdict on its prediction log.
"""

from __future__ import annotations

import logging
from contextlib import closing
from pathlib import Path
from typing import Any

import pandas as pd

from automl.bundle.model import load_model
from automl.bundle.registry import Registry
from automl.data.dataset import clean
from automl.errors import AutomlError, DataError
from automl.io import read_chunks
from automl.monitoring import history
from automl.monitoring.alerts import Alerter
from automl.monitoring.drift import check_drift, check_performance, worst
from automl.monitoring.drift_report import write_report
from automl.services.scoring import ChunkScorer

log = logging.getLogger(__name__)


def read_window(model: Any, path: Path, formats: Any, chunk_size: int) -> tuple[pd.DataFrame, dict]:
    """The valid rows of ``path``, typed, with the model's scores and a ``label`` column
    when the input has the target; and what was read (rows, rejected rows and reasons)."""
    scorer = ChunkScorer(model, keep_columns=False, on_bad_rows="quarantine")
    target = model.manifest["target"]
    parts, reasons, rows, labelled = [], [], 0, False
    with closing(read_chunks(path, formats, chunk_size)) as chunks:
        for i, raw in enumerate(chunks):
            if i == 0:
                scorer.check_columns(raw)
                labelled = target in clean(raw.head(0), scorer.clean_spec).columns
            rows += len(raw)
            typed, why = scorer.split(raw)
            if why is not None:
                reasons.append(why.str.split("; ").explode().value_counts())
            if typed is None:
                continue
            part = pd.concat([typed, model.score_valid(typed)], axis=1)
            if labelled:
                part["label"] = clean(raw.loc[typed.index], scorer.clean_spec)[target]
            parts.append(part)
    counts = pd.concat(reasons).groupby(level=0).sum() if reasons else pd.Series(dtype=int)
    rejected = rows - sum(len(p) for p in parts)
    read = {
        "path": str(path),
        "rows_read": rows,
        "rows_rejected": rejected,
        "reasons": {str(k): int(v) for k, v in counts.sort_values(ascending=False).items()},
    }
    if not parts:
        raise DataError(
            f"no row of '{path}' fits the model's contract ({rows} rejected; first reasons: "
            f"{', '.join(list(read['reasons'])[:3])}); check the file is the model's input"
        )
    return pd.concat(parts), read


def verdict(model: Any, window: pd.DataFrame, settings: Any, read: dict | None = None) -> dict:
    """The monitoring verdict of ``window`` (``model``'s input rows, typed, with its scores
    and a ``label`` column where true labels are known) against the model's reference:
    ``status`` (the worst of every check), ``signals``, ``drift`` and, with labels,
    ``performance``. ``read`` (rows read and rejected by the contract) adds the
    ``drift.rejected_rows`` rule. The batch monitor and the server both call this."""
    drift = check_drift(model, window, settings)
    status, signals = drift["status"], list(drift["signals"])
    rule = settings.drift.rejected_rows
    if read is not None and read["rows_rejected"] > rule.max_share * read["rows_read"]:
        status = worst(status, rule.status)
        signals.append("rows:rejected")
    report: dict[str, Any] = {"drift": drift}
    if "label" in window.columns:
        performance = check_performance(
            model.manifest.get("metrics", {}),
            window,
            model.task,
            model.classes,
            settings.performance,
        )
        status = worst(status, performance["status"])
        signals += performance["signals"]
        report["performance"] = performance
    return {"status": status, "signals": signals, **report}


def monitor_file(cfg: Any, out_dir: Path) -> dict[str, Any]:
    """Check ``cfg.input`` against ``cfg.model``'s reference; the report (with its
    ``exit_code``), written to ``cfg.output`` or ``out_dir``."""
    settings = cfg.monitoring
    model = load_model(cfg.model, Registry.at(cfg.registry))
    path = Path(cfg.input).expanduser()
    window, read = read_window(model, path, cfg.formats, int(cfg.chunk_size))
    found = verdict(model, window, settings, read)
    status, signals, drift = found["status"], found["signals"], found["drift"]
    head = {"status": status, "signals": signals, "exit_code": int(settings.exit_codes[status])}
    report = head | {"model": str(cfg.model), "input": read} | found  # keys in this order
    out = Path(cfg.output).expanduser() if cfg.get("output") else out_dir
    json_path, html_path = write_report(report, out, f"Monitoring: {cfg.model} on {path.name}")
    alert = None
    if cfg.alerts:
        details = {"report": str(json_path), "drifted_columns": drift["drifted_columns"]}
        alert = Alerter(settings.alerts)(str(cfg.model), status, signals, details)
    name, version = registered(str(cfg.model), cfg.registry)
    line = history.entry(name, version, "batch", report | {"alert": alert}, out)
    history.record(settings.history, line)
    print(summary(report, html_path))
    return report


def registered(ref: str, location: Any) -> tuple[str, int | None]:
    """(name, version) of a registry reference; (the reference, None) for a bundle path."""
    try:
        return Registry.at(location).version_of(ref)
    except AutomlError:
        return ref, None


def summary(report: dict[str, Any], html_path: Path) -> str:
    """A few lines for the terminal."""
    drift, read = report["drift"], report["input"]
    lines = [
        f"status: {report['status']} (exit {report['exit_code']})",
        f"rows: {drift['rows']} checked, {read['rows_rejected']} rejected by the contract",
        f"drifted columns ({drift['share_drifted']:.0%}): "
        + (", ".join(drift["drifted_columns"]) or "none"),
    ]
    if drift.get("prediction"):
        lines.append(f"prediction drift: {'yes' if drift['prediction']['drifted'] else 'no'}")
    for name, m in report.get("performance", {}).get("metrics", {}).items():
        lines.append(
            f"{name}: {m['current']} (test set {m['reference']})"
            + (" DEGRADED" if m["degraded"] else "")
        )
    lines.append(f"report: {html_path}")
    return "\n".join(lines)
