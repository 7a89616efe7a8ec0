"""Registry operations on behalf of someone: the one implementation behind the registry CLI,
the server's model listing and the dashboard.

Reads (list, show, compare, resolve) need no identity. Changes (promote, unalias, delete)
name the acting user: with an identity store they need ``editor`` (or ``admin``) on the
model's project (:meth:`AuthStore.require`) and each is written to its audit log with who
made it. Model names are ``<project>.<dataset>``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pandas as pd

from automl.bundle.model import read_manifest
from automl.bundle.registry import COLUMNS, Registry
from automl.errors import AutomlError
from automl.services.identity import MODEL_ACTIONS, AuthStore

PROMOTE, UNALIAS, DELETE = MODEL_ACTIONS
CHANGE_ROLE = "editor"  # the role a registry change needs on the model's project
VERSION_FIELDS = ["version", "aliases", "created_at", "family", "task"]
RECORD_FIELDS = [*VERSION_FIELDS, "run_dir"]
MANIFESTS_KEPT = 4096  # manifests remembered by :meth:`RegistryService.manifest`


def project_of(name: str) -> str:
    """A model's project: the part of ``<project>.<dataset>`` before the first dot."""
    return name.split(".", 1)[0]


def reference(name: str, version: int | None = None, alias: str | None = None) -> str:
    """The reference ``name``, ``name/3`` or ``name@alias`` (``ValueError`` for both)."""
    if version is not None and alias is not None:
        raise ValueError("give either version or alias, not both")
    if alias is not None:
        return f"{name}@{alias}"
    return name if version is None else f"{name}/{version}"


class RegistryService:
    """The model registry, read by anyone and changed by a named, role-checked actor."""

    def __init__(self, registry: Registry, identity: AuthStore | None = None) -> None:
        self.registry = registry
        self.identity = identity
        self.manifests: dict[tuple[str, int], dict[str, Any]] = {}

    def sign(self, name: str | None = None) -> list[str]:
        """Sign the intact versions (of ``name``) with the registry's signing key (an
        operator holding the key, when it is first set); the versions signed."""
        return self.registry.sign(name)

    # --- reads ---

    def table(self) -> pd.DataFrame:
        """One row per model: versions, latest version, aliases."""
        return self.registry.models()

    def show(self, name: str) -> pd.DataFrame:
        """Every version of ``name`` with aliases and metrics (an unknown name is an error
        that lists the known ones)."""
        self.registry.version_of(name)
        return self.registry.versions(name)

    def resolve(self, ref: str) -> tuple[str, int]:
        """(name, version) of ``name``, ``name/3`` or ``name@alias``."""
        return self.registry.version_of(ref)

    def compare(self, **filters: Any) -> pd.DataFrame:
        """Versions filtered, sorted and paged (see :meth:`Registry.compare`)."""
        return self.registry.compare(**filters)

    def versions(self, name: str) -> list[dict[str, Any]]:
        """The versions of ``name`` as the API shows them: aliases as a list, metrics as a
        mapping (empty for an unknown name; no server paths)."""
        return [{k: r[k] for k in [*VERSION_FIELDS, "metrics"]} for r in self.records(name)]

    def listing(self, visible: Callable[[str], bool]) -> list[dict[str, Any]]:
        """The models of the projects ``visible(project)`` accepts, with their versions."""
        return [
            {"name": n, "project": project_of(n), "versions": self.versions(n)}
            for n in self.table()["name"]
            if visible(project_of(n))
        ]

    def records(self, name: str) -> list[dict[str, Any]]:
        """Every version of ``name`` (oldest first) with the run folder it came from: the
        fields of :meth:`versions` plus ``run_dir``, and every metric the version has
        (empty for an unknown name)."""
        table = self.registry.versions(name)
        fixed = {*COLUMNS, "aliases"}
        out = []
        for row in table.to_dict("records"):
            entry = {k: row[k] for k in RECORD_FIELDS}
            entry["aliases"] = entry["aliases"].split() if entry["aliases"] else []
            entry["metrics"] = {
                k: v
                for k, v in row.items()
                if k not in fixed and not (isinstance(v, float) and math.isnan(v))
            }
            out.append(entry)
        return out

    def manifest(self, name: str, version: int) -> dict[str, Any]:
        """The stored manifest of ``name/version``, read through the bundle folder the
        registry recorded and checked against the hash recorded at registration (nothing
        is unpickled). A version never changes (its number is never reused), so each is
        read once and remembered (the newest ``MANIFESTS_KEPT``)."""
        name, version = self.resolve(f"{name}/{version}")
        found = self.manifests.get((name, version))
        if found is None:
            bundle, (manifest_hash, _), _ = self.registry.recorded(name, version)
            found = read_manifest(bundle, manifest_hash)
            if len(self.manifests) >= MANIFESTS_KEPT:
                self.manifests.clear()
            self.manifests[(name, version)] = found
        return found

    def target(self, name: str, alias: str) -> int | None:
        """The version ``name@alias`` points at, or None."""
        try:
            return self.resolve(f"{name}@{alias}")[1]
        except AutomlError:
            return None

    # --- changes (role-checked, audited) ---

    def promote(self, ref: str, alias: str, actor: str) -> tuple[str, int]:
        """Point ``alias`` at the version ``ref`` names (moving it); returns (name, version)."""
        name, version = self.resolve(ref)
        store = self.allowed(actor, name)
        before = self.target(name, alias)
        self.registry.set_alias(name, alias, version)
        store.record(actor, PROMOTE, name, alias=alias, version=version, previous=before)
        return name, version

    def unalias(self, name: str, alias: str, actor: str) -> None:
        """Remove ``alias`` of ``name``."""
        _, version = self.resolve(f"{name}@{alias}")
        store = self.allowed(actor, name)
        self.registry.remove_alias(name, alias)
        store.record(actor, UNALIAS, name, alias=alias, version=version)

    def delete(self, ref: str, actor: str, force: bool = False) -> tuple[str, int]:
        """Delete the version ``name/3`` and its stored bundle (refused while aliased,
        unless ``force``)."""
        name, version = self.resolve(ref)
        if "/" not in ref:
            raise AutomlError("delete needs an explicit version: name/3")
        store = self.allowed(actor, name)
        self.registry.delete(name, version, force=force)
        store.record(actor, DELETE, name, version=version, force=force)
        return name, version

    def allowed(self, actor: str, name: str) -> AuthStore:
        """The identity store, once ``actor`` may change ``name``."""
        if self.identity is None:
            raise AutomlError(
                "registry changes need an identity store (auth.url) to check roles and "
                "record who made them"
            )
        self.identity.require(actor, project_of(name), CHANGE_ROLE)
        return self.identity
