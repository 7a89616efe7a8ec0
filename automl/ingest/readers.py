"""Readers of ``python -m automl.ingest``: any supported input opened as a :class:`Table`.

``open_table(source, options, cache_dir, on_bad_rows)`` recognises the input (a file by its
suffix, a compressed file by its inner suffix, an ``http(s)://`` URL downloaded into the
cache, an SQLAlchemy URL), checks that it can be read and has data rows, and returns a
:class:`Table`: ``sample(n)`` for type inference, then ``chunks(size)`` for every row with
bounded memory (Excel, JSON documents and LibSVM are read whole: their formats are).

Row numbers: a chunk's index is the 1-based line number in a text file (delimited text,
JSON lines, LibSVM; a header line and blank lines count; a record spanning lines has its
first line's number) and the 1-based row number for the other formats (Excel, Parquet,
Feather/Arrow, JSON documents, SQL).

Delimited text: the encoding (utf-8, utf-8-sig/utf-16 by their BOM, cp1252, latin-1; with
encoding=auto a stray undecodable byte is read as cp1252), the delimiter (csv.Sniffer) and
the header (csv.Sniffer.has_header; ``names`` means no header unless header=true) are
detected on the first 64 KiB. The file is split into records here (blocks without a quote
character: one record per non-blank line; otherwise the ``csv`` module), so each record's
line number and raw text are known; pandas' C parser types the good records one chunk at a
time. A record with more fields than the columns is ragged: with on_bad_rows=fail a
DataError naming its line, otherwise it lands in ``Table.bad_rows`` and the rest is read.
"""

from __future__ import annotations

import bz2
import codecs
import contextlib
import csv
import gzip
import hashlib
import io
import json
import logging
import lzma
import os
import re
import urllib.parse
import urllib.request
import warnings
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd

from automl.data.sources import fetch
from automl.errors import ConfigError, DataError

log = logging.getLogger(__name__)

BAD_ROWS = ("fail", "skip", "quarantine")  # skip and quarantine both fill Table.bad_rows
DEFAULT_NA = ["?", "NA", "N/A", "n/a", "null", "NULL", "", "-"]
DELIMITED_SUFFIXES = (".csv", ".tsv", ".txt", ".dat", ".data")
SUFFIXES = {
    **dict.fromkeys(DELIMITED_SUFFIXES, "delimited"),
    ".xlsx": "excel",
    ".xlsm": "excel",
    ".xls": "excel",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".feather": "feather",
    ".arrow": "feather",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".svm": "libsvm",
    ".libsvm": "libsvm",
    ".svmlight": "libsvm",
    ".db": "sql",
    ".sqlite": "sql",
    ".sqlite3": "sql",
}
COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zip": "zip"}
FORMATS = {  # values accepted by options.format
    **{name: "delimited" for name in ("csv", "tsv", "txt", "text", "delimited")},
    **{name: "excel" for name in ("excel", "xlsx", "xls")},
    "parquet": "parquet",
    **{name: "feather" for name in ("feather", "arrow", "ipc")},
    "json": "json",
    **{name: "jsonl" for name in ("jsonl", "ndjson", "json_lines")},
    **{name: "libsvm" for name in ("libsvm", "svmlight", "svm")},
    "sql": "sql",
}
MAGIC = {  # signatures of binary files someone may have renamed
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"%PDF": "a PDF document",
    b"PK\x03\x04": "a zip archive (an .xlsx workbook is one)",
    b"\x1f\x8b": "gzip-compressed (name it .gz)",
    b"BZh": "bzip2-compressed (name it .bz2)",
    b"PAR1": "a Parquet file (name it .parquet)",
    b"ARROW1": "an Arrow/Feather file (name it .feather)",
    b"SQLite format 3\x00": "an SQLite database (use sqlite:///<path> with a query)",
    b"\xd0\xcf\x11\xe0": "an old Office document (.xls)",
}
PROBE_BYTES = 1 << 16  # bytes read to detect the encoding, delimiter and header
SNIFF_LINES = 50
BLOCK_CHARS = 1 << 20  # text read per block while streaming
SQL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _fallback_decode(exc: UnicodeError) -> tuple[str, int]:
    """Codec error handler for encoding=auto: bytes invalid in the detected encoding are read
    as cp1252 (latin-1 for the 5 bytes cp1252 leaves undefined) instead of failing."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    bad = exc.object[exc.start : exc.end]
    return "".join(_CP1252[b] for b in bad), exc.end


_CP1252 = [bytes([b]).decode("cp1252", errors="ignore") or chr(b) for b in range(256)]
codecs.register_error("automl.ingest.fallback", _fallback_decode)


# --------------------------------------------------------------------------- options


def _plain(value: Any) -> Any:
    """Hydra/OmegaConf containers as plain dicts and lists."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(value, DictConfig | ListConfig):
            return OmegaConf.to_container(value, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    return value


class Options:
    """Reader options (all optional), checked once."""

    KEYS = ("header", "names", "sep", "encoding", "na_values", "sheet", "query", "table", "format")

    def __init__(self, options: dict | None) -> None:
        raw = dict(_plain(options) or {})
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
        fmt = raw.get("format")
        if fmt is not None:
            key = str(fmt).lower().lstrip(".")
            if key not in FORMATS:
                raise ConfigError(f"reader option format {fmt!r} unknown; known: {sorted(FORMATS)}")
            fmt = FORMATS[key]
        self.format: str | None = fmt


# --------------------------------------------------------------------------- tables


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
        bad = _bad_row(self.name, self.on_bad_rows, row, raw, reason)
        if record:
            self.bad_rows.append(bad)


def _bad_row(name: str, on_bad_rows: str, row: int, raw: str, reason: str) -> dict:
    """The bad_rows entry of a row the parser cannot split; with on_bad_rows=fail, an error."""
    if on_bad_rows == "fail":
        shown = raw if len(raw) <= 200 else raw[:200] + "..."
        raise DataError(
            f"'{name}' line {row}: {reason}: {shown!r}. Fix the line, or set "
            "on_bad_rows=quarantine (or skip) to set such rows aside"
        )
    return {"row": row, "raw": raw, "reason": reason}


def _numbered(frames: Iterator[pd.DataFrame], size: int) -> Iterator[pd.DataFrame]:
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


def _slices(batches: list, size: int) -> Iterator[Any]:
    """Record batches cut to at most ``size`` rows (zero-copy slices)."""
    for batch in batches:
        for begin in range(0, batch.num_rows, size):
            yield batch.slice(begin, size)


def _string_columns(frame: pd.DataFrame) -> pd.DataFrame:
    frame.columns = [str(c) for c in frame.columns]
    return frame


def _mask_na(frame: pd.DataFrame, na_values: list[str]) -> pd.DataFrame:
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


class _Input:
    """A local file, possibly compressed: opens its decompressed bytes."""

    def __init__(self, path: Path, compression: str | None, name: str) -> None:
        self.path = path
        self.compression = compression
        self.name = name
        self.member: str | None = None
        if compression == "zip":
            self.member = self._zip_member()

    def _zip_member(self) -> str:
        try:
            with zipfile.ZipFile(self.path) as archive:
                members = [
                    m
                    for m in archive.namelist()
                    if not m.endswith("/") and not m.startswith("__MACOSX/")
                ]
        except (zipfile.BadZipFile, OSError) as exc:
            raise DataError(f"'{self.name}' is not a readable zip archive: {exc}") from exc
        if len(members) != 1:
            raise DataError(
                f"'{self.name}' must hold exactly one file, it holds {len(members)}: {members[:10]}"
            )
        return members[0]

    @contextlib.contextmanager
    def binary(self) -> Iterator[BinaryIO]:
        with contextlib.ExitStack() as stack:
            try:
                if self.compression == "gzip":
                    stream = stack.enter_context(gzip.open(self.path, "rb"))
                elif self.compression == "bz2":
                    stream = stack.enter_context(bz2.open(self.path, "rb"))
                elif self.compression == "xz":
                    stream = stack.enter_context(lzma.open(self.path, "rb"))
                elif self.compression == "zip":
                    archive = stack.enter_context(zipfile.ZipFile(self.path))
                    stream = stack.enter_context(archive.open(self.member))
                else:
                    stream = stack.enter_context(open(self.path, "rb"))  # noqa: SIM115
            except (OSError, zipfile.BadZipFile) as exc:
                raise DataError(f"cannot open '{self.name}': {exc}") from exc
            yield stream

    def read_all(self) -> bytes:
        with self.binary() as stream:
            return self._guard(stream.read)

    def _guard(self, read: Any, *args: Any) -> Any:
        try:
            return read(*args)
        except (OSError, EOFError, zipfile.BadZipFile, lzma.LZMAError) as exc:
            raise DataError(f"cannot read '{self.name}' ({self.compression}): {exc}") from exc

    def head(self, size: int) -> bytes:
        with self.binary() as stream:
            return self._guard(stream.read, size)

    def file_or_buffer(self) -> str | io.BytesIO:
        """A path pandas/pyarrow can open (decompressed into memory when compressed)."""
        return str(self.path) if self.compression is None else io.BytesIO(self.read_all())


def _check_text(head: bytes, name: str, fmt: str, encoding: str) -> None:
    """A binary file (an image, random bytes, a Parquet file...) named like a text file."""
    wide = encoding.startswith(("utf-16", "utf-32")) or head.startswith(
        (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
    )
    if wide:
        return
    first = head[:1024]
    if b"\x00" in first:
        why = "NUL bytes in its first KB"
    else:
        text = first.decode("latin-1")
        controls = sum(1 for c in text if ord(c) < 32 and c not in "\t\n\r\f\v" or c == "\x7f")
        if controls <= 0.1 * len(text):
            return
        why = f"{controls} control characters in its first KB"
    kind = next((kind for magic, kind in MAGIC.items() if head.startswith(magic)), None)
    raise DataError(
        f"'{name}' is not {fmt} text: it looks like {kind or 'a binary file'} ({why}). "
        "Check the file and its suffix, or set the reader option format"
    )


def _detect_encoding(head: bytes, at_eof: bool) -> str:
    """utf-8 (with BOM: utf-8-sig, utf-16 by its BOM), else cp1252, else latin-1."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    for encoding in ("utf-8", "cp1252"):
        try:
            codecs.getincrementaldecoder(encoding)().decode(head, final=at_eof)
            return encoding
        except UnicodeDecodeError:
            continue
    return "latin-1"


class _TextInput:
    """The decoding side of a text file: encoding detection and undecodable bytes located."""

    def __init__(self, source: _Input, encoding: str, fmt: str) -> None:
        self.source = source
        self.name = source.name
        head = source.head(PROBE_BYTES)
        if not head:
            raise DataError(f"'{self.name}' is empty")
        self.head = head
        self.at_eof = len(head) < PROBE_BYTES
        _check_text(head, self.name, fmt, encoding)
        if encoding == "auto":
            self.encoding = _detect_encoding(head, self.at_eof)
            self.errors = "automl.ingest.fallback"
        else:
            self.encoding = encoding
            self.errors = "strict"

    def head_text(self) -> str:
        """The probe's text, its partial last line dropped when the file goes on."""
        decoder = codecs.getincrementaldecoder(self.encoding)(self.errors)
        try:
            text = decoder.decode(self.head, final=self.at_eof)
        except UnicodeDecodeError as exc:
            raise self.decode_error(exc) from exc
        if not self.at_eof:
            lines = io.StringIO(text, newline="").readlines()
            if len(lines) > 1:
                text = "".join(lines[:-1])
        return text

    @contextlib.contextmanager
    def text(self) -> Iterator[io.TextIOWrapper]:
        with self.source.binary() as stream:
            wrapper = io.TextIOWrapper(
                stream, encoding=self.encoding, errors=self.errors, newline=""
            )
            try:
                yield wrapper
            finally:
                wrapper.detach()

    def decode_error(self, exc: UnicodeDecodeError) -> DataError:
        """The undecodable byte's line (found by re-reading the raw lines)."""
        where = self._locate()
        hint = (
            f"it is not {self.encoding}; set the reader option encoding to the file's encoding "
            "(e.g. cp1252 or latin-1), or to auto"
        )
        if where is None:
            return DataError(
                f"cannot decode '{self.name}' as {self.encoding}: {exc.reason}; {hint}"
            )
        line, column, byte = where
        return DataError(
            f"'{self.name}' line {line}: byte 0x{byte:02x} at column {column} cannot be "
            f"decoded as {self.encoding}; {hint}"
        )

    def _locate(self) -> tuple[int, int, int] | None:
        if "\n".encode(self.encoding, errors="ignore") != b"\n" or self.encoding.startswith(
            ("utf-16", "utf-32")
        ):
            return None
        line = 0
        with self.source.binary() as stream:
            for raw in stream:
                body = raw[:-1] if raw.endswith(b"\n") else raw
                body = body[:-1] if body.endswith(b"\r") else body
                for piece in body.split(b"\r"):  # a lone CR ends a line too
                    line += 1
                    try:
                        piece.decode(self.encoding)
                    except UnicodeDecodeError as exc:
                        return line, exc.start + 1, piece[exc.start]
        return None


class _LineFeed:
    """Lines for ``csv.reader``: a block's lines, then more from the stream when the block's
    last record goes on past it (a quoted field with line breaks)."""

    def __init__(self, lines: list[str], stream: io.TextIOBase) -> None:
        self.lines = lines
        self.stream = stream
        self.pos = 0
        self.extra: list[str] = []
        self.ran_out = False

    def __iter__(self) -> _LineFeed:
        return self

    def __next__(self) -> str:
        if self.pos < len(self.lines):
            self.pos += 1
            return self.lines[self.pos - 1]
        line = self.stream.readline()
        if not line:
            self.ran_out = True
            raise StopIteration
        self.extra.append(line)
        return line


class DelimitedTable(Table):
    """CSV, TSV and other delimited text, streamed with exact line numbers."""

    format = "delimited"

    def __init__(self, source: _Input, opts: Options, on_bad_rows: str, suffix: str) -> None:
        super().__init__(source.name, on_bad_rows)
        # a quoted field may be longer than the csv module's default limit (128 KiB)
        csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))
        self.input = _TextInput(source, opts.encoding, "delimited")
        self.na_values = opts.na_values
        text = self.input.head_text()
        lines = io.StringIO(text, newline="").readlines()
        sample_lines = [line for line in lines if not line.isspace()][:SNIFF_LINES]
        if not sample_lines:
            raise DataError(f"'{self.name}' has no data rows (only blank lines)")
        self.sep, self.quotechar = self._dialect(opts.sep, sample_lines, suffix)
        self.whitespace = self.sep == " "
        rows = self._split(sample_lines)
        if not rows:
            raise DataError(f"'{self.name}' has no data rows (only empty fields)")
        self.header = self._has_header(opts, rows)
        if opts.names is not None:
            self.columns = list(opts.names)
            self.columns_from = "the names option"
        elif self.header:
            self.columns = _clean_names(rows[0])
            self.columns_from = "the header"
        else:
            counts = Counter(len(r) for r in rows)
            width = max(counts, key=lambda n: (counts[n], n))
            self.columns = [f"column_{i}" for i in range(1, width + 1)]
            self.columns_from = "most lines"
        data_rows = len(rows) - (1 if self.header else 0)
        if data_rows < 1 and self.input.at_eof:
            what = "only a header line" if self.header else "no rows"
            raise DataError(f"'{self.name}' has no data rows ({what})")
        self.detected.update(
            encoding=self.input.encoding,
            sep="\\s+" if self.whitespace else self.sep,
            quotechar=self.quotechar,
            header=self.header,
            columns=list(self.columns),
            compression=source.compression,
        )

    # -- detection

    def _dialect(self, sep: str, lines: list[str], suffix: str) -> tuple[str, str]:
        sample = "".join(lines)
        quotechar = '"'
        if sep == "auto":
            try:
                sniffed = csv.Sniffer().sniff(sample, delimiters=",\t;| ")
                sep = sniffed.delimiter
                if sniffed.quotechar in ("'", '"'):
                    quotechar = sniffed.quotechar
            except csv.Error:
                sep = self._count_delimiter(lines, "\t" if suffix == ".tsv" else ",")
        return sep, quotechar

    @staticmethod
    def _count_delimiter(lines: list[str], default: str) -> str:
        """When the Sniffer gives up: the candidate found the same number of times (>0) on
        most lines; else whitespace when it splits most lines into the same (>1) fields."""
        best, score = default, 0.0
        for cand in ",\t;|":
            n, k = Counter(line.count(cand) for line in lines).most_common(1)[0]
            if n > 0 and k / len(lines) > score:
                best, score = cand, k / len(lines)
        if score == 0.0:
            n, k = Counter(len(line.split()) for line in lines).most_common(1)[0]
            if n > 1 and k / len(lines) >= 0.9:
                return " "
        return best

    def _csv_dialect(self) -> dict[str, Any]:
        return {
            "delimiter": self.sep,
            "quotechar": self.quotechar,
            "skipinitialspace": True,
            "doublequote": True,
        }

    def _split(self, lines: list[str]) -> list[list[str]]:
        if self.whitespace:
            return [line.split() for line in lines]
        rows = csv.reader(io.StringIO("".join(lines), newline=""), **self._csv_dialect())
        try:
            return [row for row in rows if row and any(f.strip() for f in row)]
        except csv.Error:
            return [line.rstrip("\r\n").split(self.sep) for line in lines]

    def _has_header(self, opts: Options, rows: list[list[str]]) -> bool:
        if opts.header != "auto":
            return bool(opts.header)
        if opts.names is not None:
            return False
        if len(rows) == 1:  # a lone line of text only: a header without data
            return not any(_is_number(f) for f in rows[0])
        dialect = type(
            "Sniffed",
            (csv.Dialect,),
            {**self._csv_dialect(), "lineterminator": "\n", "quoting": csv.QUOTE_MINIMAL},
        )

        class FixedSniffer(csv.Sniffer):
            def sniff(self, sample: str, delimiters: str | None = None) -> type[csv.Dialect]:
                return dialect

        dialect.delimiter = ","
        sample = io.StringIO()  # the rows again, with plain line ends
        csv.writer(sample, dialect).writerows(rows)
        try:
            return FixedSniffer().has_header(sample.getvalue())
        except (csv.Error, ValueError, TypeError):
            return False

    # -- streaming

    def _records(
        self, stream: io.TextIOBase, block: int
    ) -> Iterator[tuple[list[int], list[str], list[tuple[int, str, int]]]]:
        """Blocks of data records (the header left out): first line numbers and raw texts of
        the good ones, and (line, raw, field count) of the ragged ones (count -1: a quoted
        field never closed, -2: the csv module cannot split the record)."""
        lineno = 0
        width = len(self.columns)
        skip = self.header  # the header is the first non-blank record
        quote = self.quotechar
        while True:
            lines = stream.readlines(block)
            if not lines:
                return
            joined = "".join(lines)
            if self.whitespace or quote not in joined:
                starts, raws, bad = self._plain_block(lines, joined, lineno, width)
            else:
                starts, raws, bad = self._quoted_block(lines, stream, lineno, width)
                lineno += raws.pop()  # lines read past the block by its last record
            lineno += len(lines)
            if skip and (starts or bad):
                if bad and (not starts or bad[0][0] < starts[0]):
                    bad.pop(0)
                else:
                    starts, raws = starts[1:], raws[1:]
                skip = False
            yield starts, raws, bad

    def _plain_block(
        self, lines: list[str], joined: str, lineno: int, width: int
    ) -> tuple[list[int], list[str], list[tuple[int, str, int]]]:
        """Lines without a quote character: one record per non-blank line (ragged ones are
        found when pandas parses them, see _parse)."""
        if any(map(str.isspace, lines)):
            keep = [i for i, line in enumerate(lines) if not line.isspace()]
            return [lineno + i + 1 for i in keep], [lines[i] for i in keep], []
        return list(range(lineno + 1, lineno + len(lines) + 1)), lines, []

    def _quoted_block(
        self, lines: list[str], stream: io.TextIOBase, lineno: int, width: int
    ) -> tuple[list[int], list, list[tuple[int, str, int]]]:
        """Records found by the csv module (a quoted field may span lines, even past the
        block). The raws list ends with the number of lines read past the block."""
        starts: list[int] = []
        raws: list = []
        bad: list[tuple[int, str, int]] = []
        feed = _LineFeed(lines, stream)
        reader = csv.reader(feed, **self._csv_dialect())
        done = 0  # lines of the block consumed
        while done < len(lines):
            try:
                count = len(next(reader))
                if feed.ran_out:
                    count = -1
            except StopIteration:
                break
            except csv.Error:
                count = -2
            raw = "".join(lines[done : feed.pos]) + "".join(feed.extra)
            if raw and not raw.isspace():
                if 0 <= count <= width:
                    starts.append(lineno + done + 1)
                    raws.append(raw)
                else:
                    bad.append((lineno + done + 1, raw, count))
            done = feed.pos
            if feed.extra:  # the record ran past the block: the block ends with it
                break
        raws.append(len(feed.extra))
        return starts, raws, bad

    def _frames(self, size: int, record: bool) -> Iterator[pd.DataFrame]:
        starts: list[int] = []
        raws: list[str] = []
        block = BLOCK_CHARS if record else min(BLOCK_CHARS, max(1 << 16, size * 256))
        with self.input.text() as stream:
            records = self._records(stream, block)
            while True:
                try:
                    got = next(records, None)
                except UnicodeDecodeError as exc:
                    raise self.input.decode_error(exc) from exc
                if got is None:
                    break
                b_starts, b_raws, bad = got
                if bad and self.on_bad_rows == "fail":
                    self._fail_first(starts, raws)  # a ragged line pending before these
                for line, raw, count in bad:
                    self._bad(line, raw.rstrip("\r\n"), self._why(count), record)
                starts.extend(b_starts)
                raws.extend(b_raws)
                while len(starts) >= size:
                    frame = self._parse(starts, raws, size, record, final=False)
                    if frame is None:
                        break
                    yield frame
        while starts:
            frame = self._parse(starts, raws, size, record, final=True)
            if frame is not None:
                yield frame
        if record:  # ragged lines are found per block or per chunk: put them in file order
            self.bad_rows.sort(key=lambda bad: bad["row"])

    def _fail_first(self, starts: list[int], raws: list[str]) -> None:
        """on_bad_rows=fail: the first ragged record among those not parsed yet fails."""
        width = len(self.columns)
        for start, raw in zip(starts, raws):
            count = self._count(raw)
            if count > width or count < 0:
                self._bad(start, raw.rstrip("\r\n"), self._why(count), record=False)

    def _why(self, count: int) -> str:
        if count == -1:
            return "a quoted field opened on this line is never closed"
        if count == -2:
            return "the line cannot be split into fields (a malformed quoted field)"
        sep = "whitespace" if self.whitespace else repr(self.sep)
        return (
            f"{count} fields, expected {len(self.columns)} (as in {self.columns_from}; "
            f"separator {sep})"
        )

    def _count(self, raw: str) -> int:
        """The number of fields of one record."""
        if self.whitespace:
            return len(raw.split())
        if self.quotechar not in raw:
            return raw.count(self.sep) + 1
        try:
            row = next(csv.reader(io.StringIO(raw, newline=""), **self._csv_dialect()), [])
        except csv.Error:
            return -2
        return len(row)

    def _parse(
        self, starts: list[int], raws: list[str], size: int, record: bool, final: bool
    ) -> pd.DataFrame | None:
        """The first ``size`` records typed by pandas (taken off ``starts``/``raws``). When
        pandas finds a ragged record, the ragged ones are counted exactly, reported, dropped,
        and the parse is tried again. None: fewer than ``size`` good records left (and not
        ``final``)."""
        width = len(self.columns)
        while True:
            n = min(size, len(starts))
            if n == 0 or (n < size and not final):
                return None
            text = "".join(raws[:n])
            if text[-1] not in "\r\n":
                text += "\n"
            try:
                with warnings.catch_warnings():
                    # names shorter than the first line: pandas warns and drops data
                    warnings.simplefilter("error", pd.errors.ParserWarning)
                    frame = pd.read_csv(
                        io.StringIO(text),
                        sep=r"\s+" if self.whitespace else self.sep,
                        header=None,
                        names=self.columns,
                        index_col=False,
                        skipinitialspace=True,
                        quotechar=self.quotechar,
                        na_values=self.na_values,
                        keep_default_na=False,
                        skip_blank_lines=False,
                        engine="c",
                        low_memory=False,
                    )
            except (pd.errors.ParserError, pd.errors.ParserWarning, ValueError) as exc:
                counts = [self._count(raw) for raw in raws[:n]]
                bad = [i for i, count in enumerate(counts) if count > width or count < 0]
                if not bad:
                    raise DataError(
                        f"cannot parse '{self.name}' lines {starts[0]}-{starts[n - 1]}: {exc}"
                    ) from exc
                for i in bad:
                    self._bad(starts[i], raws[i].rstrip("\r\n"), self._why(counts[i]), record)
                dropped = set(bad)
                good = [i for i in range(n) if i not in dropped]
                starts[:n] = [starts[i] for i in good]
                raws[:n] = [raws[i] for i in good]
                continue
            if len(frame) != n:
                raise DataError(
                    f"cannot parse '{self.name}' lines {starts[0]}-{starts[n - 1]}: {n} "
                    f"records gave {len(frame)} rows"
                )
            frame.index = pd.Index(starts[:n], dtype="int64")
            del starts[:n], raws[:n]
            return frame


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _clean_names(fields: list[str]) -> list[str]:
    """Header names: stripped, blanks named like pandas ('Unnamed: 3'), duplicates numbered."""
    names: list[str] = []
    seen: Counter[str] = Counter()
    for i, field in enumerate(fields):
        name = field.strip().lstrip("\ufeff").strip() or f"Unnamed: {i}"
        base = name
        while name in seen:
            seen[base] += 1
            name = f"{base}.{seen[base]}"
        seen[name] += 1
        names.append(name)
    return names


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
        frame = _string_columns(frame.reset_index(drop=True))
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


class ArrowTable(Table):
    """Parquet and Feather/Arrow IPC: record batches, never the whole table at once."""

    def __init__(self, source: _Input, fmt: str, on_bad_rows: str) -> None:
        self.format = fmt
        super().__init__(source.name, on_bad_rows)
        self.input = source
        import pyarrow as pa

        try:
            schema, rows = self._open_meta()
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise DataError(f"'{self.name}' is not a readable {fmt} file: {exc}") from exc
        if rows == 0:
            raise DataError(f"'{self.name}' has no data rows")
        self.detected.update(columns=list(schema.names), rows=rows)

    def _open_meta(self) -> tuple[Any, int]:
        with self._reader() as (schema, rows, _):
            return schema, rows

    @contextlib.contextmanager
    def _reader(self) -> Iterator[tuple[Any, int, Any]]:
        """(schema, row count, batches(size) -> record batches) of the file."""
        import pyarrow as pa
        import pyarrow.feather as feather
        import pyarrow.ipc as ipc
        import pyarrow.parquet as pq

        handle = self.input.file_or_buffer()
        if self.format == "parquet":
            parquet = pq.ParquetFile(handle)
            try:
                rows = parquet.metadata.num_rows
                yield parquet.schema_arrow, rows, lambda size: parquet.iter_batches(size)
            finally:
                parquet.close()
            return
        if isinstance(handle, str):
            source = pa.memory_map(handle)
        else:
            source = pa.BufferReader(handle.getvalue())
        with source:
            try:  # Feather v2 = the Arrow IPC file format
                reader = ipc.open_file(source)
                count = reader.num_record_batches
                rows = sum(reader.get_batch(i).num_rows for i in range(count))
                batches = [reader.get_batch(i) for i in range(count)]
                schema = reader.schema
            except pa.ArrowInvalid:  # an IPC stream, or Feather v1
                source.seek(0)
                try:
                    table = ipc.open_stream(source).read_all()
                except pa.ArrowInvalid:
                    source.seek(0)
                    table = feather.read_table(source)
                batches, schema, rows = table.to_batches(), table.schema, table.num_rows
            yield schema, rows, lambda size: _slices(batches, size)

    def _frames(self, size: int, record: bool) -> Iterator[pd.DataFrame]:
        import pyarrow as pa

        try:
            with self._reader() as (_, _, batches):
                frames = (_string_columns(b.to_pandas()) for b in batches(size))
                yield from _numbered(frames, size)
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"cannot read '{self.name}': {exc}") from exc


class JsonLinesTable(Table):
    """JSON lines: one object per line, streamed; a line that is not a JSON object is a bad
    row with its line number."""

    format = "jsonl"

    def __init__(self, source: _Input, opts: Options, on_bad_rows: str) -> None:
        super().__init__(source.name, on_bad_rows)
        self.input = _TextInput(source, opts.encoding, "JSON lines")
        self.na_values = opts.na_values
        if not any(not line.isspace() for line in io.StringIO(self.input.head_text())):
            raise DataError(f"'{self.name}' has no data rows (only blank lines)")
        self.detected.update(encoding=self.input.encoding, compression=source.compression)

    def _frames(self, size: int, record: bool) -> Iterator[pd.DataFrame]:
        columns: dict[str, None] = {}
        rows: list[dict] = []
        starts: list[int] = []
        lineno = 0
        with self.input.text() as stream:
            while True:
                try:
                    lines = stream.readlines(BLOCK_CHARS)
                except UnicodeDecodeError as exc:
                    raise self.input.decode_error(exc) from exc
                if not lines:
                    break
                for line in lines:
                    lineno += 1
                    if line.isspace():
                        continue
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError as exc:
                        self._bad(
                            lineno,
                            line.rstrip("\r\n"),
                            f"not valid JSON ({exc.msg} at column {exc.colno})",
                            record,
                        )
                        continue
                    if not isinstance(obj, dict):
                        self._bad(
                            lineno,
                            line.rstrip("\r\n"),
                            f"a JSON {type(obj).__name__}, not an object",
                            record,
                        )
                        continue
                    rows.append(obj)
                    starts.append(lineno)
                    if len(rows) == size:
                        yield self._frame(rows, starts, columns)
                        rows, starts = [], []
        if rows:
            yield self._frame(rows, starts, columns)

    def _frame(self, rows: list[dict], starts: list[int], columns: dict) -> pd.DataFrame:
        frame = _string_columns(pd.DataFrame.from_records(rows))
        columns.update(dict.fromkeys(frame.columns))  # columns in order of first appearance
        frame = frame.reindex(columns=list(columns))
        frame.index = pd.Index(starts, dtype="int64")
        return _mask_na(frame, self.na_values)


# --------------------------------------------------------------------------- whole formats


def _read_json(source: _Input, opts: Options, on_bad_rows: str) -> FrameTable:
    text_input = _TextInput(source, opts.encoding, "JSON")
    with text_input.text() as stream:
        try:
            data = json.load(stream)
        except UnicodeDecodeError as exc:
            raise text_input.decode_error(exc) from exc
        except json.JSONDecodeError as exc:
            raise DataError(
                f"'{source.name}' is not valid JSON: {exc.msg} at line {exc.lineno}, "
                f"column {exc.colno}"
            ) from exc
    try:
        frame, layout = _json_frame(data, source.name, opts.names)
    except (ValueError, TypeError, AttributeError) as exc:
        raise DataError(f"cannot read '{source.name}' as a table: {exc}") from exc
    table = FrameTable(source.name, on_bad_rows, "json", _mask_na(frame, opts.na_values))
    table.detected.update(layout=layout, encoding=text_input.encoding)
    return table


def _json_frame(data: Any, name: str, names: list[str] | None) -> tuple[pd.DataFrame, str]:
    """Records ``[{...}]``, columnar ``{"col": [...]}`` or pandas' orients (columns, index,
    split, table, values)."""
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        if "schema" in data:  # orient=table: records, with pandas' index as a column
            frame = pd.DataFrame.from_records(data["data"])
            if data["schema"].get("primaryKey") == ["index"] and "index" in frame.columns:
                frame = frame.drop(columns="index")
            return frame, "table"
        if "columns" in data:  # orient=split
            return pd.DataFrame(data["data"], columns=data["columns"]), "split"
    if isinstance(data, list):
        if not data:
            raise DataError(f"'{name}' has no data rows (an empty JSON list)")
        if all(isinstance(r, dict) for r in data):
            return pd.DataFrame.from_records(data), "records"
        if all(isinstance(r, list) for r in data):
            width = max(len(r) for r in data)
            cols = names or [f"column_{i}" for i in range(1, width + 1)]
            return pd.DataFrame(data, columns=cols), "values"
        raise DataError(
            f"'{name}': a JSON list must hold objects (records) or lists (rows), one per row"
        )
    if isinstance(data, dict) and data:
        values = list(data.values())
        if all(isinstance(v, list) for v in values):
            lengths = {len(v) for v in values}
            if len(lengths) != 1:
                raise DataError(
                    f"'{name}': columnar JSON with columns of different lengths {sorted(lengths)}"
                )
            return pd.DataFrame(data), "columnar"
        if all(isinstance(v, dict) for v in values):
            outer_numeric = all(str(k).lstrip("-").isdigit() for k in data)
            inner = {k for v in values for k in v}
            inner_numeric = all(str(k).lstrip("-").isdigit() for k in inner)
            if outer_numeric and not inner_numeric:  # orient=index
                return pd.DataFrame.from_dict(data, orient="index"), "index"
            return pd.DataFrame.from_dict(data, orient="columns"), "columns"
    if isinstance(data, dict) and not data:
        raise DataError(f"'{name}' has no data rows (an empty JSON object)")
    raise DataError(
        f"'{name}': JSON layout not recognised; expected records [{{...}}, ...] or columns "
        '{"col": [...]}'
    )


def _read_excel(source: _Input, opts: Options, on_bad_rows: str, suffix: str) -> FrameTable:
    header = opts.header
    if header == "auto":
        header = opts.names is None
    sheet = 0 if opts.sheet is None else opts.sheet
    try:
        frame = pd.read_excel(
            source.file_or_buffer(),
            sheet_name=sheet,
            header=0 if header else None,
            names=opts.names,
            na_values=opts.na_values,
            keep_default_na=False,
        )
    except ImportError as exc:
        raise DataError(f"cannot read '{source.name}': {exc}") from exc
    except (ValueError, KeyError, IndexError, OSError, zipfile.BadZipFile) as exc:
        raise DataError(
            f"cannot read '{source.name}' as an Excel workbook ({suffix}): {exc}"
        ) from exc
    if not header and opts.names is None:
        frame.columns = [f"column_{i}" for i in range(1, frame.shape[1] + 1)]
    table = FrameTable(source.name, on_bad_rows, "excel", frame)
    table.detected.update(sheet=sheet, header=bool(header))
    return table


_NUMBER = rb"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|nan|inf)"
SVM_LINE = re.compile(  # label(s) [qid:n] index:value ... [# comment]
    rb"^\s*%s(?:,%s)*(?:\s+qid:\d+)?(?:\s+\d+:%s)*\s*(?:#.*)?$" % ((_NUMBER,) * 3),
    re.IGNORECASE,
)


def _read_libsvm(source: _Input, opts: Options, on_bad_rows: str) -> FrameTable:
    from sklearn.datasets import load_svmlight_file

    head = source.head(PROBE_BYTES)
    if not head:
        raise DataError(f"'{source.name}' is empty")
    _check_text(head, source.name, "LibSVM", "auto")
    data = source.read_all()
    lines = data.splitlines()
    numbers = [
        i for i, line in enumerate(lines, 1) if line.strip() and not line.lstrip().startswith(b"#")
    ]
    bad_rows: list[dict] = []
    try:
        features, labels = load_svmlight_file(io.BytesIO(data))
    except ValueError as exc:
        bad = [i for i in numbers if not SVM_LINE.match(lines[i - 1])]
        if not bad:
            raise DataError(f"cannot read '{source.name}' as LibSVM: {exc}") from exc
        why = "not a LibSVM line ('<label> <index>:<value> ...')"
        bad_rows = [
            _bad_row(source.name, on_bad_rows, i, lines[i - 1].decode("latin-1"), why) for i in bad
        ]
        drop = set(bad)
        numbers = [i for i in numbers if i not in drop]
        kept = b"\n".join(lines[i - 1] for i in numbers) + b"\n"
        try:
            features, labels = load_svmlight_file(io.BytesIO(kept))
        except ValueError as exc2:
            raise DataError(f"cannot read '{source.name}' as LibSVM: {exc2}") from exc2
    if features.shape[0] == 0:
        raise DataError(f"'{source.name}' has no data rows")
    width = features.shape[1]
    names = opts.names
    if names is None:
        label, feature_names = "label", [f"f{i}" for i in range(width)]
    elif len(names) == width + 1:
        label, feature_names = names[0], names[1:]
    elif len(names) == width:
        label, feature_names = "label", names
    else:
        raise DataError(
            f"'{source.name}' has {width} features: the names option must list {width} "
            f"feature names, or the label's name then them ({width + 1}), not {len(names)}"
        )
    frame = pd.DataFrame(features.toarray(), columns=feature_names)
    frame.insert(0, label, labels)
    index = numbers if len(numbers) == len(frame) else None
    table = FrameTable(source.name, on_bad_rows, "libsvm", frame, index, bad_rows)
    table.detected.update(label=label, features=width)
    return table


# --------------------------------------------------------------------------- SQL


class SqlTable(Table):
    """A query (or a whole table) through SQLAlchemy, read in chunks."""

    format = "sql"

    def __init__(self, url: str, opts: Options, on_bad_rows: str) -> None:
        import sqlalchemy as sa

        try:
            parsed = sa.engine.make_url(url)
        except sa.exc.ArgumentError as exc:
            raise DataError(f"'{url}' is not a database URL: {exc}") from exc
        shown = parsed.render_as_string(hide_password=True)
        super().__init__(shown, on_bad_rows)
        if parsed.get_backend_name() == "sqlite":
            database = parsed.database
            if (
                database
                and database != ":memory:"
                and not database.startswith("file:")
                and not Path(database).is_file()
            ):
                raise DataError(f"SQLite database file '{database}' does not exist")
        try:
            self.engine = sa.create_engine(parsed)
        except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
            raise DataError(
                f"cannot open database {shown}: {exc} (is its driver installed?)"
            ) from exc
        if opts.table:
            quote = self.engine.dialect.identifier_preparer.quote
            parts = str(opts.table).split(".")
            self.query = f"SELECT * FROM {'.'.join(quote(p) for p in parts)}"
        elif opts.query:
            self.query = str(opts.query)
        else:
            raise ConfigError(
                f"reading from database {shown} needs the reader option query "
                "(an SQL query) or table (a table name)"
            )
        try:
            with self.engine.connect() as conn:
                result = conn.exec_driver_sql(self.query)
                first = result.fetchone()
                result.close()
        except (sa.exc.SQLAlchemyError, ImportError) as exc:
            raise self._error(exc) from exc
        if first is None:
            raise DataError(f"SQL query {self.query!r} on {shown} returned no rows")
        self.detected.update(query=self.query)

    def _error(self, exc: BaseException) -> DataError:
        cause: BaseException | None = exc
        while cause is not None and getattr(cause, "orig", None) is None:
            cause = cause.__cause__
        message = str(getattr(cause, "orig", None) or exc).strip()
        return DataError(f"SQL query {self.query!r} on {self.name} failed: {message}")

    def _frames(self, size: int, record: bool) -> Iterator[pd.DataFrame]:
        import sqlalchemy as sa

        try:
            with self.engine.connect() as conn:
                conn = conn.execution_options(stream_results=True)
                frames = pd.read_sql(self.query, conn, chunksize=size)
                yield from _numbered((_string_columns(f) for f in frames), size)
        except (sa.exc.SQLAlchemyError, pd.errors.DatabaseError) as exc:
            raise self._error(exc) from exc


# --------------------------------------------------------------------------- opening


def _download(url: str, cache_dir: str | None) -> Path:
    """``url`` fetched once into the cache (atomically: a temp file, then a rename)."""
    cache = Path(
        cache_dir or os.environ.get("AUTOML_CACHE_DIR") or Path.home() / ".cache" / "automl"
    ).expanduser()
    name = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name or "download"
    dest = cache / "ingest" / hashlib.sha256(url.encode()).hexdigest()[:16] / name
    if dest.is_file():
        log.info("using the cached download of %s: %s", url, dest)
        return dest
    try:
        return fetch(url, dest)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot download '{url}': {exc}") from exc


def _known() -> str:
    return ", ".join(sorted(SUFFIXES)) + " (optionally compressed: " + ", ".join(COMPRESSIONS) + ")"


def open_table(
    source: str, options: dict | None, cache_dir: str | None, on_bad_rows: str = "fail"
) -> Table:
    """Open ``source`` (a file, an ``http(s)://`` URL or an SQLAlchemy URL) for reading.

    Raises DataError, naming the file and line, when it is missing, empty, binary,
    undecodable, of an unknown format, or an SQL query fails; ConfigError for bad options.
    """
    opts = Options(options)
    if on_bad_rows not in BAD_ROWS:
        raise ConfigError(f"on_bad_rows must be one of {', '.join(BAD_ROWS)}, not {on_bad_rows!r}")
    source = str(source)
    name = source
    if source.startswith(("http://", "https://")):
        path = _download(source, cache_dir)
    elif source.startswith("file://"):
        path = Path(urllib.parse.unquote(urllib.parse.urlparse(source).path))
    elif SQL_SCHEME.match(source):
        return SqlTable(source, opts, on_bad_rows)
    else:
        path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"'{name}' does not exist")
    if not path.is_file():
        raise DataError(f"'{name}' is not a file")
    suffixes = [s.lower() for s in path.suffixes]
    compression = COMPRESSIONS.get(suffixes[-1]) if suffixes else None
    inner = suffixes[:-1] if compression else suffixes
    if path.stat().st_size == 0:
        raise DataError(f"'{name}' is empty (0 bytes)")
    src = _Input(path, compression, name)
    if src.member is not None:
        inner = [s.lower() for s in Path(src.member).suffixes] or inner
    suffix = inner[-1] if inner else ""
    fmt = opts.format or SUFFIXES.get(suffix)
    if fmt is None:
        what = suffix or "(no suffix)"
        if compression:
            what += f" inside {path.suffix}"
        raise DataError(
            f"'{name}': unknown file type '{what}'; known: {_known()}; or set the reader "
            "option format"
        )
    log.debug("reading %s as %s (compression: %s)", name, fmt, compression)
    if fmt == "sql":
        if compression:
            raise DataError(f"'{name}': decompress the database file first")
        return SqlTable(f"sqlite:///{path.resolve()}", opts, on_bad_rows)
    if fmt == "delimited":
        return DelimitedTable(src, opts, on_bad_rows, suffix)
    if fmt == "jsonl":
        return JsonLinesTable(src, opts, on_bad_rows)
    if fmt == "json":
        return _read_json(src, opts, on_bad_rows)
    if fmt == "libsvm":
        return _read_libsvm(src, opts, on_bad_rows)
    if fmt == "excel":
        return _read_excel(src, opts, on_bad_rows, suffix)
    return ArrowTable(src, fmt, on_bad_rows)
