"""Prometheus metrics of the server: requests, errors, latency and rows per model version.

With several uvicorn workers, ``python -m automl.serve`` sets ``PROMETHEUS_MULTIPROC_DIR``
and ``/metrics`` adds up every worker's values. ``render(visible)`` keeps only the samples
of the models ``visible`` accepts (``/metrics`` shows a caller its own projects' models).
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from automl.serving.inputs import ApiError

MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR"


class Metrics:
    """The server's metrics, in a registry of their own (one per app)."""

    def __init__(self, buckets: list[float]) -> None:
        self.registry = CollectorRegistry()
        labels = ["endpoint", "model", "version"]
        self.requests = Counter(
            "automl_requests", "Requests by outcome", [*labels, "status"], registry=self.registry
        )
        self.errors = Counter(
            "automl_errors",
            "Requests answered with an error",
            [*labels, "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "automl_request_seconds",
            "Request latency (seconds)",
            labels,
            buckets=buckets,
            registry=self.registry,
        )
        self.predicted = Counter(
            "automl_predicted_rows",
            "Records scored, by path (fast or pipeline)",
            ["model", "version", "path"],
            registry=self.registry,
        )
        self.log_failures = Counter(
            "automl_prediction_log_failures",
            "Prediction log records lost: queue_full (dropped) or unwritable (store refused)",
            ["reason"],
            registry=self.registry,
        )

    def log_failed(self, reason: str, n: int) -> None:
        """Count ``n`` lost prediction log records (the logger's ``on_failure``)."""
        self.log_failures.labels(reason).inc(n)

    @contextmanager
    def observe(
        self, endpoint: str, model: str, version: int, started: float | None = None
    ) -> Iterator[None]:
        """Count the request and time it; an exception is counted by its HTTP status."""
        started = time.perf_counter() if started is None else started
        status = 200
        try:
            yield
        except ApiError as exc:
            status = exc.status
            raise
        except BaseException:
            status = 500
            raise
        finally:
            labels = (endpoint, model, str(version))
            self.requests.labels(*labels, str(status)).inc()
            if status >= 400:
                self.errors.labels(*labels, str(status)).inc()
            self.latency.labels(*labels).observe(time.perf_counter() - started)

    def rows(self, model: str, version: int, path: str, n: int) -> None:
        self.predicted.labels(model, str(version), path).inc(n)

    def render(self, visible: Callable[[str], bool] | None = None) -> tuple[bytes, str]:
        """The exposition text (all workers' when running several); with ``visible``, only
        the samples whose ``model`` label it accepts (and those without one)."""
        registry: Any = self.registry
        if os.environ.get(MULTIPROCESS):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
        if visible is not None:
            registry = Filtered(registry, visible)
        return generate_latest(registry), CONTENT_TYPE_LATEST


class Filtered:
    """A collector: the metric families of ``source`` without other models' samples."""

    def __init__(self, source: Any, visible: Callable[[str], bool]) -> None:
        self.source = source
        self.visible = visible

    def collect(self) -> Iterable[Any]:
        for family in self.source.collect():
            kept = copy.copy(family)
            kept.samples = [
                s
                for s in family.samples
                if "model" not in s.labels or self.visible(s.labels["model"])
            ]
            yield kept
