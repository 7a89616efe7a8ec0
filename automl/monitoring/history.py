"""The monitoring history: one JSON line per verdict (batch report or online check), in the
file ``monitoring.history`` names; the dashboard's status over time.

Each line is ``{"time", "model", "version", "source", "status", "signals", "rows",
"drifted_columns", "share_drifted", "performance", "report", "alert"}`` (``report``: the
batch report's folder, or None; ``alert``: the alert the check sent, or None). Lines are
appended under the file's lock, so batch monitors and server workers can share one file;
a torn or foreign line is skipped when read.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from automl.monitoring.alerts import locked

READ_LIMIT = 200_000  # lines kept in memory (the newest)


def entry(
    model: str, version: int | None, source: str, report: dict[str, Any], folder: Any = None
) -> dict[str, Any]:
    """The history line of a verdict ``report`` (as :func:`verdict` returns it)."""
    drift = report.get("drift") or {}
    performance = {
        name: {"current": m.get("current"), "reference": m.get("reference")}
        for name, m in ((report.get("performance") or {}).get("metrics") or {}).items()
    }
    return {
        "time": time.time(),
        "model": model,
        "version": version,
        "source": source,
        "status": report.get("status"),
        "signals": list(report.get("signals") or []),
        "rows": drift.get("rows"),
        "drifted_columns": list(drift.get("drifted_columns") or []),
        "share_drifted": drift.get("share_drifted"),
        "performance": performance,
        "report": None if folder is None else str(folder),
        "alert": alert_sent(report.get("alert")),
    }


def alert_sent(alert: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the history keeps of the alert a check sent (None: none was due)."""
    if not alert:
        return None
    return {
        "time": alert.get("time"),
        "signals": list(alert.get("signals") or []),
        "new": list(alert.get("new") or []),
    }


def record(path: Any, line: dict[str, Any]) -> None:
    """Append ``line`` to the history at ``path`` (nothing when ``path`` is None)."""
    if path is None:
        return
    target = Path(str(path)).expanduser()
    text = json.dumps(line, default=str) + "\n"
    with locked(target), target.open("a+b") as out:
        if out.tell() > 0:  # after a torn line (a writer that died), start a new one
            out.seek(out.tell() - 1)
            if out.read(1) != b"\n":
                text = "\n" + text
        out.write(text.encode())


class History:
    """The lines of one history file, read incrementally: each :meth:`lines` call parses
    only what was appended since the last (a page can ask for them every time)."""

    def __init__(self, path: Any) -> None:
        self.path = None if path is None else Path(str(path)).expanduser()
        self.offset = 0
        self.found: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def lines(self, models: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Every line (of ``models`` only, when given), oldest first."""
        with self.lock:
            self.catch_up()
            found = list(self.found)
        if models is None:
            return found
        wanted = set(models)
        return [line for line in found if line["model"] in wanted]

    def catch_up(self) -> None:
        if self.path is None or not self.path.is_file():
            self.offset, self.found = 0, []
            return
        if self.path.stat().st_size < self.offset:  # replaced or truncated: start again
            self.offset, self.found = 0, []
        with self.path.open("rb") as source:
            source.seek(self.offset)
            appended = source.read()
        complete = appended[: appended.rfind(b"\n") + 1]  # a line being written waits
        self.offset += len(complete)
        for text in complete.splitlines():
            try:
                line = json.loads(text)
            except ValueError:
                continue
            if isinstance(line, dict) and isinstance(line.get("model"), str):
                self.found.append(line)
        del self.found[:-READ_LIMIT]


def latest(lines: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The newest line per model."""
    newest: dict[str, dict[str, Any]] = {}
    for line in lines:
        newest[line["model"]] = line
    return newest
