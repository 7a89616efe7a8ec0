"""Models as the server holds them: loaded lazily into an LRU cache, compiled for the fast
path, and found by reference with a short-lived cache of the registry's answer.

A model is compiled when it loads (``Model.compile`` with the ``compiled`` config): its
batches are then scored by the compiled model, and up to ``fast_path.max_rows`` records
by the fast path (``FastPath``: records -> plain-Python rows -> the compiled model).

A request resolves its reference (``name``, ``name@alias`` or ``name/3``) to a version at
most ``resolve_ttl`` seconds old, then takes that version's model from the cache (loading
it on a miss). A request in flight keeps the object it took, so an alias move or an
eviction never breaks it; the next requests get the new version.
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

log = logging.getLogger(__name__)


@dataclass
class ServedModel:
    """One version of a registered model, ready to score."""

    name: str
    version: int
    model: Model
    fast: FastPath | None
    fast_path_reason: str
    explain_settings: Settings = field(default_factory=Settings)

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
    """An LRU cache of ``ServedModel`` keyed by (name, version), plus reference resolution.

    The registry never gives a version number twice (a deleted ``name/3`` stays gone), so a
    key always means one bundle; loads go through ``Registry.resolve``, which checks the
    bundle against the hashes recorded at registration before it is unpickled.
    """

    def __init__(
        self, registry: Registry, cfg: Any, fast_path: Any, compiled: Any, contributions: Any
    ) -> None:
        self.registry = registry
        self.size = int(cfg.size)
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
                return self.models[key]
            loading = self.loading.setdefault(key, threading.Lock())
        with loading:
            with self.lock:
                if key in self.models:
                    return self.models[key]
            served = self.load(name, version)
            with self.lock:
                self.models[key] = served
                self.loading.pop(key, None)
                while len(self.models) > self.size:
                    old, _ = self.models.popitem(last=False)
                    log.info("model cache: dropped %s/%d (size %d)", *old, self.size)
        return served

    def has(self, name: str, version: int) -> bool:
        return (name, version) in self.models

    def cached(self) -> list[tuple[str, int]]:
        with self.lock:
            return list(self.models)

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
        log.info(
            "loaded %s/%d in %.2f s; fast path: %s",
            name,
            version,
            time.perf_counter() - started,
            reason,
        )
        return ServedModel(name, version, model, fast, reason, self.explain_settings)
