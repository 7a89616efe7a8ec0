"""Tables in and out of files, the format chosen by the file's suffix (formats from config)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from automl.config import build, to_plain
from automl.data.sources import read_table
from automl.errors import ConfigError, DataError


def file_format(path: Path, formats: Any) -> Any:
    """The ``formats`` entry for ``path`` (``.csv.gz`` counts as ``csv``)."""
    suffixes = [s.lstrip(".").lower() for s in path.suffixes]
    for name in reversed(suffixes):
        if name in formats:
            return formats[name]
    raise ConfigError(
        f"cannot tell the format of '{path}' from its suffix; known: {', '.join(formats)}"
    )


def read_file(path: str | Path, formats: Any) -> pd.DataFrame:
    """Read a table with the reader configured for its suffix."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"input file '{path}' does not exist")
    return read_table(path, build(file_format(path, formats).read))


def write_file(frame: pd.DataFrame, path: str | Path, formats: Any) -> Path:
    """Write a table atomically (temp file in the same folder, then rename)."""
    path = Path(path).expanduser()
    spec = to_plain(file_format(path, formats).write)
    method = spec.pop("method")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        getattr(frame, method)(tmp, **spec)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
