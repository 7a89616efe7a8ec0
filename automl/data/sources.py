"""Where a data set's rows come from: local files (with a download cache) or scikit-learn."""

from __future__ import annotations

import logging
import shutil
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from automl.atomic import staged
from automl.errors import DataError

log = logging.getLogger(__name__)


class FileSource:
    """A table in a file, read by ``reader`` (any pandas reader, options from YAML).

    The file is looked up as ``path`` (absolute, or relative to the current directory),
    then under ``data_dir``, then in ``cache_dir``; when none has it and ``url`` is set,
    it is downloaded into ``cache_dir`` first.
    """

    def __init__(
        self,
        path: str,
        reader: Callable[..., pd.DataFrame],
        url: str | None = None,
        data_dir: str | None = None,
        cache_dir: str | None = None,
        download_timeout: float = 60.0,
    ) -> None:
        self.path = path
        self.reader = reader
        self.url = url
        self.data_dir = data_dir
        self.cache_dir = cache_dir
        self.download_timeout = download_timeout

    def candidates(self) -> list[Path]:
        """Local places the file may be, in the order they are tried."""
        path = Path(self.path).expanduser()
        places = [path]
        if not path.is_absolute() and self.data_dir:
            places.append(Path(self.data_dir).expanduser() / path)
        if self.cache_dir:
            places.append(Path(self.cache_dir).expanduser() / path.name)
        return places

    def resolve(self) -> Path:
        """The local file, downloading it into the cache when only a URL has it."""
        places = self.candidates()
        for place in places:
            if place.is_file():
                return place
        tried = ", ".join(str(p) for p in places)
        if not self.url:
            raise DataError(
                f"data file '{self.path}' not found (looked in: {tried}); set the data set's "
                "source.path, or AUTOML_DATA_DIR to the folder that holds it"
            )
        if not self.cache_dir:
            raise DataError(f"data file '{self.path}' not found and no cache_dir to download into")
        return self.download(Path(self.cache_dir).expanduser() / Path(self.path).name, tried)

    def download(self, dest: Path, tried: str) -> Path:
        """Fetch ``url`` into ``dest``; a failure says where the file was looked for."""
        try:
            return fetch(self.url, dest, self.download_timeout)
        except (OSError, ValueError) as exc:
            raise DataError(
                f"data file '{self.path}' not found locally (looked in: {tried}) and the "
                f"download from {self.url} failed: {exc}. Put the file in one of those places "
                "or set AUTOML_DATA_DIR"
            ) from exc

    def load(self) -> pd.DataFrame:
        """Read the table; an unreadable or empty file is a DataError naming the path."""
        path = self.resolve()
        return read_table(path, self.reader)


def fetch(url: str, dest: Path, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` atomically (temp file beside it, then rename)."""
    log.info("downloading %s -> %s", url, dest)
    with (
        staged(dest) as tmp,
        tmp.open("wb") as out,
        urllib.request.urlopen(url, timeout=timeout) as resp,
    ):
        shutil.copyfileobj(resp, out)
    return dest


def read_table(path: Path, reader: Callable[..., pd.DataFrame]) -> pd.DataFrame:
    """Read ``path`` with ``reader``, turning parser failures into one clear DataError."""
    if path.stat().st_size == 0:
        raise DataError(f"'{path}' is empty")
    try:
        frame = reader(path)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"'{path}' is empty or has no columns") from exc
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read '{path}': {exc}") from exc
    if len(frame) == 0:
        raise DataError(f"'{path}' has no data rows")
    return frame


class SklearnSource:
    """A data set shipped with scikit-learn (works offline).

    ``loader`` is a scikit-learn ``load_*`` function; class codes are replaced by the
    data set's class names when it has them.
    """

    def __init__(self, loader: Callable[..., object], target: str = "target") -> None:
        self.loader = loader
        self.target = target

    def load(self) -> pd.DataFrame:
        bunch = self.loader(as_frame=True)
        frame = bunch.frame.rename(columns={"target": self.target})
        names = getattr(bunch, "target_names", None)
        if names is not None and len(names) and isinstance(names[0], str):
            frame[self.target] = pd.Series(
                [names[i] for i in frame[self.target]], index=frame.index, dtype="str"
            )
        return frame
