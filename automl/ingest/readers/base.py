"""What every reader shares: the options, the :class:`Table` an opened input becomes,
bad-row recording and the regrouping of frames into numbered chunks."""

from __future__ import annotations

import codecs
import contextlib
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pandas as pd

from automl.config import to_plain
from automl.data.bad_rows import FAIL
from automl.errors import ConfigError, DataError

DEFAULT_NA = ["?", "NA", "N/A", "n/a", "null", "NULL", "", "-"]
PROBE_BYTES = 1 << 16  # bytes read to detect the encoding, delimiter and header
BLOCK_CHARS = 1 << 20  # text read per block while streaming


class Options:
    """Reader options (all optional), checked once."""

    KEYS = ("header", "names", "sep", "encoding", "na_values", "sheet", "query", "table", "format")

    def __init__(self, options: dict | None) -> None:
        raw = dict(to_plain(options) or {})
        unknown = sorted(set(raw) - set(self.KEYS))
        if unknown:
            raise ConfigError(f"unknown reader option(s) {unknown}; known: {', '.join(self.KEYS)}")
        header = raw.get("header", "auto")
        if isinstance(header, str) and header.lower() in ("true", "false", "auto"):
            header = {"true": True, "false": False, "auto": "auto"}[header.lower()]
        if header is None:
            header = "auto"
        if header not in (True, False, "auto"):
            raise ConfigError(f"reader option header must be auto, true or false, not {header!r}")
        self.header: bool | str = header
        names = raw.get("names")
        if names is not None:
            if isinstance(names, str) or not hasattr(names, "__iter__"):
                raise ConfigError(f"reader option names must be a list of names, not {names!r}")
            names = [str(n).strip() for n in names]
            dupes = sorted(n for n, k in Counter(names).items() if k > 1)
            if dupes or not names:
                raise ConfigError(f"reader option names must be distinct and non-empty: {dupes}")
        self.names: list[str] | None = names
        sep = raw.get("sep", "auto")
        sep = "auto" if sep is None else str(sep)
        sep = {"\\t": "\t", "tab": "\t", "\\s+": " ", "whitespace": " "}.get(sep, sep)
        if sep != "auto" and len(sep) != 1:
            raise ConfigError(
                f"reader option sep must be auto or one character (or \\t, \\s+), not {sep!r}"
            )
        self.sep = sep
        encoding = str(raw.get("encoding") or "auto")
        if encoding != "auto":
            try:
                encoding = codecs.lookup(encoding).name
            except LookupError as exc:
                raise ConfigError(f"reader option encoding: unknown codec {encoding!r}") from exc
        self.encoding = encoding
        na = raw.get("na_values", DEFAULT_NA)
        if na is None:
            na = []
        if isinstance(na, str):
            na = [na]
        self.na_values = [str(v) for v in na]
        self.sheet = raw.get("sheet")
        self.query = raw.get("query")
        self.table = raw.get("table")
        if self.query and self.table:
            raise ConfigError("reader options query and table exclude each other; give one")
        fmt = raw.get("format")  # a format's name, suffix or alias (checked by open_table)
        self.format: str | None = None if fmt is None else str(fmt).lower().lstrip(".")


class Table:
    """An opened input: a sample for type inference, then every row in chunks."""

    format = "?"

    def __init__(self, name: str, on_bad_rows: str) -> None:
        self.name = name  # the file, URL or database as shown in messages
        self.on_bad_rows = on_bad_rows
        self.bad_rows: list[dict] = []
        self.detected: dict[str, Any] = {"format": self.format}  # what was recognised

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.detected}>"

    def sample(self, rows: int) -> pd.DataFrame:
        """The first ``rows`` data rows (ragged rows skipped unless on_bad_rows is fail)."""
        if rows < 1:
            raise ValueError("rows must be at least 1")
        with contextlib.closing(self._frames(rows, record=False)) as frames:
            for frame in frames:
                return frame
        return pd.DataFrame()

    def chunks(self, chunk_size: int) -> Iterator[pd.DataFrame]:
        """Every row, ``chunk_size`` rows at a time; ``bad_rows`` is refilled on the way."""
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        self.bad_rows = []
        yield from self._frames(chunk_size, record=True)

    def _frames(self, size: int, record: bool) -> Iterator[pd.DataFrame]:
        raise NotImplementedError

    def _bad(self, row: int, raw: str, reason: str, record: bool) -> None:
        """A row the parser cannot split: an error, or recorded and left out."""
        bad = bad_row(self.name, self.on_bad_rows, row, raw, reason)
        if record:
            self.bad_rows.append(bad)


def bad_row(name: str, on_bad_rows: str, row: int, raw: str, reason: str) -> dict:
    """The bad_rows entry of a row the parser cannot split; with on_bad_rows=fail, an error."""
    if on_bad_rows == FAIL:
        shown = raw if len(raw) <= 200 else raw[:200] + "..."
        raise DataError(
            f"'{name}' line {row}: {reason}: {shown!r}. Fix the line, or set "
            "on_bad_rows=quarantine (or skip) to set such rows aside"
        )
    return {"row": row, "raw": raw, "reason": reason}


def numbered(frames: Iterator[pd.DataFrame], size: int) -> Iterator[pd.DataFrame]:
    """Frames regrouped into chunks of exactly ``size`` rows (the last may be shorter),
    indexed by 1-based row number."""
    pending: list[pd.DataFrame] = []
    held = 0
    first = 1
    for frame in frames:
        if not len(frame):
            continue
        pending.append(frame)
        held += len(frame)
        while held >= size:
            whole = pd.concat(pending, ignore_index=True) if len(pending) > 1 else pending[0]
            chunk, rest = whole.iloc[:size].copy(), whole.iloc[size:]
            chunk.index = pd.RangeIndex(first, first + size)
            first += size
            yield chunk
            pending, held = ([rest], len(rest)) if len(rest) else ([], 0)
    if held:
        whole = pd.concat(pending, ignore_index=True) if len(pending) > 1 else pending[0]
        whole = whole.copy()
        whole.index = pd.RangeIndex(first, first + held)
        yield whole


def string_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its column names as text."""
    frame.columns = [str(c) for c in frame.columns]
    return frame


def mask_na(frame: pd.DataFrame, na_values: list[str]) -> pd.DataFrame:
    """Text cells equal to an NA marker become missing (formats without a parser for it)."""
    if not na_values:
        return frame
    for col in frame.columns:
        series = frame[col]
        if pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series):
            try:
                hit = series.isin(na_values)
            except TypeError:  # unhashable cells (nested JSON)
                continue
            if hit.any():
                frame[col] = series.mask(hit)
    return frame


class FrameTable(Table):
    """A format read whole (Excel, JSON documents, LibSVM): chunks are slices."""

    def __init__(
        self,
        name: str,
        on_bad_rows: str,
        fmt: str,
        frame: pd.DataFrame,
        index: list[int] | None = None,
        bad_rows: list[dict] | None = None,
    ) -> None:
        self.format = fmt
        super().__init__(name, on_bad_rows)
        if frame.shape[0] == 0:
            raise DataError(f"'{name}' has no data rows")
        frame = string_columns(frame.reset_index(drop=True))
        frame.index = (
            pd.Index(index, dtype="int64")
            if index is not None
            else pd.RangeIndex(1, len(frame) + 1)
        )
        self.frame = frame
        self._found_bad = bad_rows or []
        self.detected["columns"] = list(frame.columns)

    def _frames(self, size: int, record: bool) -> Iterator[pd.DataFrame]:
        if record:
            self.bad_rows.extend(self._found_bad)
        for begin in range(0, len(self.frame), size):
            yield self.frame.iloc[begin : begin + size].copy()
