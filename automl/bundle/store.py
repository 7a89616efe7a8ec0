"""Where registered bundles are kept: a local folder (shared by machines that mount it at
the same path), or any fsspec URL (``s3://``, ``gs://``, ``file://``, ``memory://``...).

A bundle in a remote store is fetched into a local cache (``registry.cache``) before the
registry verifies its hashes and loads it, so a server's workers on any machine read the
same registered bytes; a fetched copy is kept under its version and manifest hash.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import fsspec

from automl.atomic import discard, publish, temp_path


class BundleStore:
    """Registered bundles under ``location`` (a path or an fsspec URL): ``<name>/<version>``."""

    def __init__(self, location: str | Path, cache: str | Path | None = None) -> None:
        text = str(location)
        self.remote = "://" in text and not text.startswith("file://")
        if self.remote:
            self.fs, self.root = fsspec.core.url_to_fs(text)
            self.protocol = text.split("://", 1)[0]
        else:
            self.root = str(Path(text.removeprefix("file://")).expanduser())
        default_cache = Path.home() / ".cache" / "automl" / "bundles"
        self.cache = Path(cache).expanduser() if cache else default_cache

    @property
    def folder(self) -> Path:
        """The local folder (a local store only)."""
        return Path(self.root)

    def staging(self, name: str) -> Path:
        """A new local folder to assemble a bundle in before it is stored."""
        local = self.folder / name if not self.remote else self.cache / ".incoming" / name
        return temp_path(local / "incoming-bundle", directory=True)

    def put(self, staging: Path, name: str, version: int) -> str:
        """Store the finished ``staging`` folder as ``name/version`` (a folder left there by
        a crash is replaced: no registry row can point at it yet); its recorded location."""
        if not self.remote:
            target = self.folder / name / str(version)
            if target.exists() or target.is_symlink():
                discard(target)
            publish(staging, target)
            return str(target.resolve())
        target = f"{self.root.rstrip('/')}/{name}/{version}"
        if self.fs.exists(target):
            self.fs.rm(target, recursive=True)
        for file in sorted(p for p in staging.rglob("*") if p.is_file()):
            self.fs.put_file(str(file), f"{target}/{file.relative_to(staging).as_posix()}")
        return f"{self.protocol}://{target}"

    def local(self, location: str, name: str, version: int, manifest_hash: str) -> Path:
        """A local folder holding the stored bundle at ``location`` (a remote one fetched
        into the cache once; the caller verifies its hashes before anything is loaded)."""
        if "://" not in location:
            return Path(location)
        copy = self.cache / name / f"{version}-{manifest_hash[:16]}"
        if copy.is_dir():
            return copy
        fs, path = fsspec.core.url_to_fs(location)
        fetching = temp_path(copy, directory=True)
        try:
            for remote in fs.find(path):
                local = fetching / Path(remote).relative_to(path.rstrip("/")).as_posix()
                local.parent.mkdir(parents=True, exist_ok=True)
                fs.get_file(remote, str(local))
            publish(fetching, copy)
        finally:
            discard(fetching)
        return copy

    def remove(self, location: str) -> None:
        """Delete a stored bundle (and nothing else)."""
        if "://" not in location:
            shutil.rmtree(location, ignore_errors=True)
            return
        fs, path = fsspec.core.url_to_fs(location)
        if fs.exists(path):
            fs.rm(path, recursive=True)
