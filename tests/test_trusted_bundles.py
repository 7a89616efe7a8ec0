"""Trusted bundles (issue 12, findings 6, 7 and 10): the registry records what it registered
and refuses anything else before unpickling; version numbers are never reused; a crash
between the bundle rename and the registry commit does not block later registrations."""

from __future__ import annotations

import json
import pathlib
import shutil
from pathlib import Path
from types import SimpleNamespace

import joblib
import pytest
from helpers import FAST, compose_train, run_cli

from automl import load_model
from automl.bundle.model import CHECKSUM, MANIFEST, PIPELINE, Model, sha256
from automl.bundle.registry import Registry
from automl.errors import AutomlError
from automl.services.training import train
from automl.serving.models import ModelCache

IRIS = ["dataset=iris", "model=linear", *FAST]


class Payload:
    """A pickle that creates ``marker`` when it is unpickled (stands in for any code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


@pytest.fixture
def iris_run(tmp_path) -> Path:
    train(compose_train(IRIS), tmp_path / "run")
    return tmp_path / "run"


@pytest.fixture
def race(tmp_path, iris_run) -> tuple[Registry, Path, dict]:
    """An empty registry, and a bundle with its manifest to register into it."""
    bundle = iris_run / "model"
    manifest = json.loads((bundle / MANIFEST).read_text())
    return Registry(tmp_path / "r.db", tmp_path / "models"), bundle, manifest


def plant(bundle: Path, marker: Path, list_nothing: bool) -> None:
    """The attack: a pipeline that runs code; with ``list_nothing``, ``files: {}`` and a
    recomputed ``manifest.sha256`` so the bundle is self-consistent."""
    joblib.dump(Payload(marker), bundle / PIPELINE)
    if list_nothing:
        manifest = json.loads((bundle / MANIFEST).read_text())
        (bundle / MANIFEST).write_text(json.dumps(dict(manifest, files={})))
        (bundle / CHECKSUM).write_text(sha256(bundle / MANIFEST) + "\n")


@pytest.mark.parametrize("list_nothing", [True, False], ids=["files-emptied", "pipeline-only"])
def test_a_tampered_registered_bundle_is_refused_before_unpickling(
    iris_run, tmp_path, list_nothing
):
    registry = Registry.default()
    stored = registry.resolve("default.iris/1")
    marker = tmp_path / "pwned"
    plant(stored, marker, list_nothing)
    for ref in ("default.iris", "default.iris/1"):
        with pytest.raises(AutomlError, match=r"'default.iris/1'.*does not match.*registered"):
            load_model(ref)
    assert not marker.exists()


def test_a_bundle_whose_manifest_does_not_list_its_pipeline_is_refused(iris_run, tmp_path):
    bundle = tmp_path / "copy"
    shutil.copytree(iris_run / "model", bundle)
    marker = tmp_path / "pwned"
    plant(bundle, marker, list_nothing=True)
    with pytest.raises(AutomlError, match="does not list 'pipeline.joblib'"):
        load_model(bundle)
    assert not marker.exists()


def test_version_numbers_are_never_reused_and_the_cache_serves_the_new_model(race):
    registry, bundle, manifest = race
    assert [registry.register("race", bundle, manifest, bundle) for _ in range(2)] == [1, 2]
    cfg = SimpleNamespace(size=4, max_memory_mb=None, resolve_ttl=0.0)
    cache = ModelCache(registry, cfg, SimpleNamespace(enabled=False), None, {})
    old = cache.get(*cache.resolve("race"))
    assert old.version == 2
    registry.delete("race", 2)
    assert registry.register("race", bundle, manifest, bundle) == 3
    name, version = cache.resolve("race")
    assert version == 3 and cache.get(name, version) is not old
    for v in (3, 1):
        registry.delete("race", v)
    assert registry.register("race", bundle, manifest, bundle) == 4  # none left, no reuse
    with pytest.raises(AutomlError, match="no version 2"):
        registry.version_of("race/2")


def test_a_leftover_version_folder_from_a_crash_does_not_block_registering(race):
    registry, bundle, manifest = race
    assert registry.register("race", bundle, manifest, bundle) == 1
    leftover = registry.store / "race" / "2"  # renamed into place, then no commit
    shutil.copytree(bundle, leftover)
    (leftover / "stale").write_text("from the crashed registration")
    assert registry.register("race", bundle, manifest, bundle) == 2
    assert not (leftover / "stale").exists()
    assert load_model("race/2", registry=registry).classes == load_model(bundle).classes
    assert registry.register("race", bundle, manifest, bundle) == 3


def test_a_registry_from_before_hashes_is_migrated_trusting_its_bundles_once(race):
    registry, bundle, manifest = race
    for _ in range(2):
        registry.register("race", bundle, manifest, bundle)
    registry.delete("race", 2)
    with registry.connect(write=True) as db:  # as the older code left it
        db.exec_driver_sql("DROP TABLE bundle_hashes")
        db.exec_driver_sql("DROP TABLE name_versions")
        db.exec_driver_sql("PRAGMA user_version = 0")
    assert load_model("race/1", registry=registry).classes  # hashed when migrated
    assert registry.register("race", bundle, manifest, bundle) == 2  # reused: was unknown
    with registry.connect(write=True) as db:  # a row the registry never hashed
        db.exec_driver_sql("DELETE FROM bundle_hashes WHERE version = 2")
    with pytest.raises(AutomlError, match=r"'race/2'.*no recorded hash"):
        load_model("race/2", registry=registry)


# --- optional signing: registry.signing_key ---


def test_with_a_signing_key_only_versions_signed_with_it_are_loaded(race, tmp_path):
    _, bundle, manifest = race
    signer = Registry(tmp_path / "r.db", tmp_path / "models", signing_key="k1")
    signer.register("p.iris", bundle, manifest, bundle.parent)
    assert signer.resolve("p.iris/1").is_dir()
    other_key = Registry(tmp_path / "r.db", tmp_path / "models", signing_key="k2")
    with pytest.raises(AutomlError, match="not signed with this registry's signing key"):
        other_key.resolve("p.iris")
    # someone with write access to the database and the store, but not the key, adds a
    # self-consistent version: it is refused before anything is unpickled
    keyless = Registry(tmp_path / "r.db", tmp_path / "models")
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil"
    shutil.copytree(bundle, evil)
    plant(evil, marker, list_nothing=False)
    files = dict(manifest["files"], **{PIPELINE: sha256(evil / PIPELINE)})
    (evil / MANIFEST).write_text(json.dumps(dict(manifest, files=files)))
    (evil / CHECKSUM).write_text(sha256(evil / MANIFEST) + "\n")
    keyless.register("p.iris", evil, manifest, evil)
    with pytest.raises(AutomlError, match="'p.iris/2' refused: it is not signed"):
        load_model("p.iris", signer)
    assert not marker.exists()
    assert load_model("p.iris/1", signer).manifest["dataset"] == "iris"


def test_sign_signs_intact_versions_from_before_the_key_and_never_a_changed_one(
    race, tmp_path, monkeypatch
):
    _, bundle, manifest = race
    folder = tmp_path / "reg"
    registry = Registry(folder / "registry.db", folder / "models")  # no key yet
    for _ in range(2):
        registry.register("p.iris", bundle, manifest, bundle.parent)
    monkeypatch.setenv("AUTOML_REGISTRY_SIGNING_KEY", "a-long-random-secret")
    signer = Registry.default(folder)  # the key comes from the environment, via config
    assert signer.signing_key is not None
    with pytest.raises(AutomlError, match="not signed"):
        signer.resolve("p.iris/1")
    stored = Registry.default(folder).recorded("p.iris", 2)[0]
    plant(stored, tmp_path / "pwned", list_nothing=True)
    with pytest.raises(AutomlError, match="'p.iris/2'.*does not match"):
        signer.sign()
    shutil.rmtree(stored)
    shutil.copytree(bundle, stored)  # restored from a backup
    done = run_cli("automl.registry", "--registry", str(folder), "sign")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "signed 2 version(s): p.iris/1 p.iris/2"
    assert signer.resolve("p.iris/1") and signer.resolve("p.iris/2")
    assert run_cli("automl.registry", "--registry", str(folder), "sign").stdout.startswith(
        "signed 0 version(s)"
    )
    monkeypatch.delenv("AUTOML_REGISTRY_SIGNING_KEY")
    refused = run_cli("automl.registry", "--registry", str(folder), "sign")
    assert refused.returncode == 1 and "no signing key" in refused.stderr


def test_the_bytes_unpickled_are_the_bytes_the_registry_recorded(race, tmp_path):
    """Loading checks the registry's hashes on the very bytes it unpickles: a bundle
    swapped after the registry's check (here: handed to ``Model.load`` directly) is
    refused even when it is self-consistent."""
    registry, bundle, manifest = race
    registry.register("p.iris", bundle, manifest, bundle.parent)
    stored, recorded, _ = registry.recorded("p.iris", 1)
    assert Model.load(stored, recorded).manifest["dataset"] == "iris"
    marker = tmp_path / "pwned"
    plant(stored, marker, list_nothing=False)
    files = dict(manifest["files"], **{PIPELINE: sha256(stored / PIPELINE)})
    (stored / MANIFEST).write_text(json.dumps(dict(manifest, files=files)))
    (stored / CHECKSUM).write_text(sha256(stored / MANIFEST) + "\n")
    with pytest.raises(AutomlError, match="does not match its SHA-256"):
        Model.load(stored, recorded)
    assert not marker.exists()
