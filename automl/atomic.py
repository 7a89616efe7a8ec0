"""The one way to write a file or a folder so that nothing half-written is ever seen.

Everything is written to a temporary path beside the target (same file system), then
renamed into place; on any error the temporary path is removed and the target is left
as it was. Every module that writes an artifact goes through :func:`staged`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def file_mode(directory: bool = False) -> int:
    """The permissions a new file (or folder) gets under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def temp_path(path: Path, directory: bool = False, suffix: str = "") -> Path:
    """A new, empty temporary file (or folder) beside ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        return Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    return Path(tmp)


def discard(tmp: Path) -> None:
    """Remove a temporary file or folder made by :func:`temp_path` (if still there)."""
    if tmp.is_dir() and not tmp.is_symlink():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.unlink(missing_ok=True)


def publish(tmp: Path, path: Path, replace: bool = False, mode: int | None = None) -> Path:
    """Rename a finished temporary file or folder to ``path`` (one atomic step), with the
    permissions of a new file (or ``mode``, e.g. 0o600 for one only its owner may read).

    A file replaces an existing file; a folder replaces a missing or empty folder
    (``os.replace`` cannot replace a folder that has files: callers that must replace
    one write its files one by one with :func:`staged`, or pass ``replace``: the old
    folder is renamed aside, the new one into place, then the old one removed (put back if
    the second rename fails): ``path`` is never a mix of the two).
    """
    if mode is None:
        mode = file_mode(directory=tmp.is_dir())  # temp paths are private until now
    os.chmod(tmp, mode)
    if replace and tmp.is_dir() and path.is_dir() and not path.is_symlink():
        old = temp_path(path, directory=True)
        os.replace(path, old)
        try:
            os.replace(tmp, path)
        except BaseException:
            os.replace(old, path)
            raise
        discard(old)
        return path
    os.replace(tmp, path)
    return path


@contextmanager
def staged(path: str | Path, directory: bool = False, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``.

    ``with staged(out) as tmp: write(tmp)`` leaves either the complete new ``out`` or
    whatever was there before, never a partial one. ``directory=True`` stages a folder.
    """
    path = Path(path)
    tmp = temp_path(path, directory, suffix)
    try:
        yield tmp
        publish(tmp, path)
    except BaseException:
        discard(tmp)
        raise


def write_text(path: str | Path, text: str) -> Path:
    """``text`` (UTF-8) written to ``path`` atomically."""
    with staged(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """``data`` written to ``path`` atomically."""
    with staged(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)
