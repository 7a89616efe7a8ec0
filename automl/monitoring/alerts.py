"""Alerts: a check's signals sent to sinks from config, one alert per incident.

Sinks are config nodes with ``_target_`` (``monitoring.alerts.sinks``): ``LogSink``,
``JsonlSink(path)``, ``WebhookSink(url)`` (POSTs the alert as JSON), or any object with
``send(alert: dict)``. ``Alerter`` keeps, per model and signal (``column:age``,
``prediction``, ``performance:auc``...), when it last alerted, in a small JSON file
(``alerts.state``, written atomically under a lock): a signal that keeps firing alerts
again only after ``cooldown_s``, and a signal that stops firing is forgotten, so its next
incident alerts at once. One check sends at most one alert, listing all its signals.
"""

from __future__ import annotations

import fcntl
import json
import logging
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from automl.atomic import write_text
from automl.config import build
from automl.errors import ConfigError
from automl.monitoring.drift import STATUSES

log = logging.getLogger(__name__)


class LogSink:
    """Alerts as one log record each, at ``level``."""

    def __init__(self, level: str = "warning") -> None:
        if not isinstance(logging.getLevelName(level.upper()), int):
            raise ConfigError(f"LogSink level '{level}' is not a logging level")
        self.level = logging.getLevelName(level.upper())

    def send(self, alert: dict[str, Any]) -> None:
        log.log(
            self.level,
            "ALERT %s: %s (%s)",
            alert["model"],
            alert["status"],
            ", ".join(alert["signals"]),
        )


class JsonlSink:
    """Alerts appended to a JSON lines file, one line each."""

    def __init__(self, path: str) -> None:
        self.path = Path(path).expanduser()

    def send(self, alert: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(alert, default=str) + "\n")


class WebhookSink:
    """Alerts POSTed as JSON to ``url``; a non-2xx answer or no answer is an error."""

    def __init__(self, url: str, timeout_s: float = 10.0, headers: dict | None = None) -> None:
        self.url, self.timeout_s = url, timeout_s
        self.headers = {"Content-Type": "application/json", **(headers or {})}

    def send(self, alert: dict[str, Any]) -> None:
        body = json.dumps(alert, default=str).encode()
        request = urllib.request.Request(self.url, data=body, headers=self.headers, method="POST")
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            response.read()


@contextmanager
def locked(path: Path):
    """An exclusive lock on ``path`` + ``.lock`` (several monitors share one state)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def write_json(path: Path, data: Any) -> None:
    """``data`` as JSON at ``path`` (temp file, then rename)."""
    write_text(path, json.dumps(data, indent=2, default=str))


class Alerter:
    """Sends one alert per incident to every sink (see the module docstring)."""

    def __init__(self, config: Any) -> None:
        self.sinks = [build(node) for node in config.sinks]
        self.cooldown_s = float(config.cooldown_s)
        self.state = Path(config.state).expanduser()
        self.min_status = config.min_status

    def __call__(
        self, model: str, status: str, signals: list[str], details: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """Alert on ``signals`` of ``model`` unless all are cooling down; the alert sent
        (or None). A status better than ``min_status`` fires no signal."""
        if STATUSES.index(status) < STATUSES.index(self.min_status):
            signals = []
        now = time.time()
        with locked(self.state):
            state = json.loads(self.state.read_text()) if self.state.is_file() else {}
            last = state.get(model, {})
            fresh = [s for s in signals if now - last.get(s, float("-inf")) >= self.cooldown_s]
            state[model] = {s: now if fresh else last[s] for s in signals}
            write_json(self.state, state)
        if not fresh:
            return None
        alert = {
            "model": model,
            "status": status,
            "signals": signals,
            "new": fresh,
            "time": now,
            **(details or {}),
        }
        for sink in self.sinks:
            try:
                sink.send(alert)
            except (OSError, urllib.error.URLError) as exc:
                log.error("alert sink %s failed: %s", type(sink).__name__, exc)
        return alert
