"""Models as the server holds them: loaded lazily into an LRU cache bounded by a count and
by memory, compiled for the fast path, and found by reference with a short-lived cache of
the registry's answer.

A model is compiled when it loads (``Model.compile`` with the ``compiled`` config): its
batches are then scored by the compiled model, and up to ``fast_path.max_rows`` records
by the fast path (``FastPath``: records -> plain-Python rows -> the compiled model).

A request resolves its reference (``name``, ``name@alias`` or ``name/3``) to a version at
most ``resolve_ttl`` seconds old, then takes that version's model from the cache (loading
it on a miss). A request in flight keeps the object it took, so an alias move or an
eviction never breaks it; the next requests get the new version.

Each model's memory is estimated once, when it loads (:func:`automl.serving.footprint.
footprint`); least recently used models are dropped until at most ``cache.size`` models
and ``cache.max_memory_mb`` MiB are held. A model larger than the memory bound alone is
still served, alone, with a warning.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from automl.bundle.explain import Explanation, Settings
from automl.bundle.model import Model
from automl.bundle.registry import Registry
from automl.services.scoring import one_thread_each
from automl.serving.fastpath import Fallback, FastPath
from automl.serving.footprint import footprint
from automl.serving.metrics import Metrics

log = logging.getLogger(__name__)
MB = 2**20  # the cache's "MB" are MiB


@dataclass
class ServedModel:
    """One version of a registered model, ready to score."""

    name: str
    version: int
    model: Model
    fast: FastPath | None
    fast_path_reason: str
    explain_settings: Settings = field(default_factory=Settings)
    memory: int = 0  # bytes it holds, estimated when it loaded (serving/footprint.py)

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """The vectorised path on rows ``Model.prepare`` returned: probabilities or values."""
        return self.model.output(features)

    def score_fast(self, records: list[dict]) -> np.ndarray:
        """The fast path on records: probabilities or values (``Fallback`` if it can't)."""
        if self.fast is None:
            raise Fallback
        return self.fast.predict(records)

    def contributions(self, features: pd.DataFrame) -> Explanation:
        """Each input column's contribution to each row's output (rows as ``Model.prepare``
        returns them), by the model's explainer (built on the first request)."""
        return self.model.explainer(self.explain_settings).explain(features)


class ModelCache:
    """An LRU cache of ``ServedModel`` keyed by (name, version), bounded by ``cfg.size``
    models and ``cfg.max_memory_mb`` MiB (None: by count alone), plus reference resolution.
    With ``metrics``, lookups, drops and what the cache holds are counted there.

    The registry never gives a version number twice (a deleted ``name/3`` stays gone), so a
    key always means one bundle; loads go through ``Registry.resolve``, which checks the
    bundle against the hashes recorded at registration before it is unpickled.
    """

    def __init__(
        self,
        registry: Registry,
        cfg: Any,
        fast_path: Any,
        compiled: Any,
        contributions: Any,
        metrics: Metrics | None = None,
    ) -> None:
        self.registry = registry
        self.size = int(cfg.size)
        bound = cfg.max_memory_mb
        self.max_memory = None if bound is None else int(float(bound) * MB)  # bytes
        self.memory = 0  # bytes the cached models hold
        self.metrics = metrics
        self.ttl = float(cfg.resolve_ttl)
        self.fast_enabled = bool(fast_path.enabled)
        self.compiled = compiled  # the `compiled` config node (how models are compiled)
        self.explain_settings = Settings.of(contributions)
        self.models: OrderedDict[tuple[str, int], ServedModel] = OrderedDict()
        self.resolved: dict[str, tuple[float, tuple[str, int]]] = {}
        self.lock = threading.Lock()
        self.loading: dict[tuple[str, int], threading.Lock] = {}

    def remembered(self, ref: str) -> tuple[str, int] | None:
        """(name, version) of a reference resolved in the last ``ttl`` s, else None."""
        hit = self.resolved.get(ref)
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def resolve(self, ref: str) -> tuple[str, int]:
        """(name, version) of a reference, asking the registry at most every ``ttl`` s."""
        hit = self.remembered(ref)
        if hit is not None:
            return hit
        now = time.monotonic()
        answer = self.registry.version_of(ref)
        self.resolved[ref] = (now + self.ttl, answer)
        return answer

    def get(self, name: str, version: int) -> ServedModel:
        """The model, from the cache or loaded (one load per version at a time)."""
        key = (name, version)
        with self.lock:
            if key in self.models:
                self.models.move_to_end(key)
                self.count(hit=True)
                return self.models[key]
            loading = self.loading.setdefault(key, threading.Lock())
        with loading:
            with self.lock:
                if key in self.models:  # another request loaded it meanwhile
                    self.count(hit=True)
                    return self.models[key]
            served = self.load(name, version)
            with self.lock:
                self.count(hit=False)
                self.models[key] = served
                self.memory += served.memory
                self.loading.pop(key, None)
                self.shrink()
        return served

    def count(self, hit: bool) -> None:
        if self.metrics is not None:
            (self.metrics.cache_hits if hit else self.metrics.cache_misses).inc()

    def over_memory(self) -> bool:
        return self.max_memory is not None and self.memory > self.max_memory

    def shrink(self) -> None:
        """Drop least recently used models until both bounds hold, keeping the newest even
        when it alone is over the memory bound (with a warning). Called under the lock."""
        while len(self.models) > 1 and (len(self.models) > self.size or self.over_memory()):
            bound = "size" if len(self.models) > self.size else "memory"
            (name, version), old = self.models.popitem(last=False)
            self.memory -= old.memory
            log.info(
                "model cache: dropped %s/%d (%s bound; %d model(s), %.1f MiB left)",
                name,
                version,
                bound,
                len(self.models),
                self.memory / MB,
            )
            if self.metrics is not None:
                self.metrics.cache_evictions.labels(bound).inc()
        if self.over_memory():
            (name, version), served = next(iter(self.models.items()))
            log.warning(
                "model cache: %s/%d takes %.1f MiB, more than cache.max_memory_mb=%g: "
                "it is served alone",
                name,
                version,
                served.memory / MB,
                self.max_memory / MB,
            )
        if self.metrics is not None:
            self.metrics.cache_held(len(self.models), self.memory)

    def has(self, name: str, version: int) -> bool:
        return (name, version) in self.models

    def cached(self) -> list[tuple[str, int]]:
        with self.lock:
            return list(self.models)

    def usage(self) -> list[tuple[str, int, int]]:
        """(name, version, bytes) of each cached model, least recently used first."""
        with self.lock:
            return [(name, version, m.memory) for (name, version), m in self.models.items()]

    def load(self, name: str, version: int) -> ServedModel:
        started = time.perf_counter()
        model = self.registry.load(f"{name}/{version}")
        one_thread_each(model.pipeline)
        reason = model.compile(self.compiled)
        fast = None
        if not self.fast_enabled:
            reason = "disabled (fast_path.enabled=false)"
        elif model.compiled is not None:
            fast = FastPath(model)
        served = ServedModel(name, version, model, fast, reason, self.explain_settings)
        served.memory = footprint(served)
        log.info(
            "loaded %s/%d in %.2f s (%.1f MiB); fast path: %s",
            name,
            version,
            time.perf_counter() - started,
            served.memory / MB,
            reason,
        )
        return served
