"""Prometheus metrics of the server: requests, errors, latency and rows per model version;
the model cache's lookups, drops, models and memory.

With several uvicorn workers, ``python -m automl.serve`` sets ``PROMETHEUS_MULTIPROC_DIR``
and ``/metrics`` adds up every worker's values. ``render(visible)`` keeps only the samples
of the models ``visible`` accepts (``/metrics`` shows a caller its own projects' models).
"""

from __future__ import annotations

import copy
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
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
        self.started = time.monotonic()
        self.seen: dict[tuple[str, str], deque[tuple[float, float]]] = {}
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
        lookups = Counter(
            "automl_model_cache_lookups",
            "Model cache lookups: hit, or miss (the model was loaded)",
            ["result"],
            registry=self.registry,
        )
        self.cache_hits, self.cache_misses = lookups.labels("hit"), lookups.labels("miss")
        self.cache_evictions = Counter(
            "automl_model_cache_evictions",
            "Models dropped from the cache, by the bound that dropped them: size or memory",
            ["bound"],
            registry=self.registry,
        )
        self.cache_models = Gauge(
            "automl_model_cache_models",
            "Models loaded in the cache (summed over workers)",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.cache_bytes = Gauge(
            "automl_model_cache_bytes",
            "Memory the cached models hold, in bytes, as estimated when each loaded "
            "(summed over workers)",
            registry=self.registry,
            multiprocess_mode="livesum",
        )

    def log_failed(self, reason: str, n: int) -> None:
        """Count ``n`` lost prediction log records (the logger's ``on_failure``)."""
        self.log_failures.labels(reason).inc(n)

    def cache_held(self, models: int, memory: int) -> None:
        """What the model cache holds now: ``models`` taking ``memory`` bytes."""
        self.cache_models.set(models)
        self.cache_bytes.set(memory)

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

    def source(self, visible: Callable[[str], bool] | None = None) -> Any:
        """What to collect: this app's registry, or every worker's when running several;
        with ``visible``, only the samples whose ``model`` label it accepts (and those
        without one)."""
        registry: Any = self.registry
        if os.environ.get(MULTIPROCESS):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
        return registry if visible is None else Filtered(registry, visible)

    def render(self, visible: Callable[[str], bool] | None = None) -> tuple[bytes, str]:
        """The exposition text of :meth:`source`."""
        return generate_latest(self.source(visible)), CONTENT_TYPE_LATEST

    def traffic(self, visible: Callable[[str], bool]) -> dict[tuple[str, str], dict[str, Any]]:
        """Per (model, version) of the visible models, since the server started:
        ``requests``, ``errors``, ``rows`` scored, ``seconds`` (total latency), the latency
        ``buckets`` (upper bound -> count, of every endpoint) and ``per_minute`` (requests
        per minute over the last few minutes: see :meth:`rate`)."""
        found: dict[tuple[str, str], dict[str, Any]] = {}

        def of(labels: dict[str, str]) -> dict[str, Any]:
            key = (labels["model"], labels["version"])
            if key not in found:
                found[key] = {"requests": 0, "errors": 0, "rows": 0, "seconds": 0.0, "buckets": {}}
            return found[key]

        for family in self.source(visible).collect():
            for sample in family.samples:
                labels = sample.labels
                if "model" not in labels:
                    continue
                if sample.name == "automl_requests_total":
                    of(labels)["requests"] += sample.value
                elif sample.name == "automl_errors_total":
                    of(labels)["errors"] += sample.value
                elif sample.name == "automl_predicted_rows_total":
                    of(labels)["rows"] += sample.value
                elif sample.name == "automl_request_seconds_sum":
                    of(labels)["seconds"] += sample.value
                elif sample.name == "automl_request_seconds_bucket":
                    buckets = of(labels)["buckets"]
                    bound = float(labels["le"])
                    buckets[bound] = buckets.get(bound, 0) + sample.value
        for key, counts in found.items():
            counts["per_minute"] = self.rate(key, counts["requests"])
        return found

    def rate(self, key: tuple[str, str], total: float) -> float:
        """Requests per minute of ``key``: against the oldest of its counts seen in the
        last five minutes (so it settles as the page is read), else since start."""
        now = time.monotonic()
        seen = self.seen.setdefault(key, deque())
        seen.append((now, total))
        while len(seen) > 1 and now - seen[0][0] > 300:
            seen.popleft()
        then, before = seen[0]
        if now - then < 10:  # too recent to tell: since the server started
            then, before = self.started, 0.0
        return 60.0 * (total - before) / max(now - then, 1e-9)


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


def quantile(buckets: dict[float, float], q: float) -> float | None:
    """The latency under which a share ``q`` of requests finished: the upper bound of the
    first histogram bucket (cumulative counts) that holds it; None without requests."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0
    if not total:
        return None
    for bound in bounds:
        if buckets[bound] >= q * total:
            return bound
    return bounds[-1]
