"""Tables in and out of files: the one formats registry (``formats``, from config).

``formats`` (the ``formats`` config group, composed into every app config as
``cfg.formats``) has one entry per table format. An entry lists its ``suffixes`` (a file's
format is found from its suffix; ``.csv.gz`` counts as ``csv``) and the callables that
apply to it, each a ``_target_`` node with ``_partial_: true``:

- ``open``: ingest's validating reader, ``(source, options, on_bad_rows) -> Table``;
- ``read``: the whole file, ``(path) -> DataFrame``;
- ``stream``: chunks for predict and monitor, ``(path, chunk_size)`` yielding DataFrames;
- ``append``: written chunk by chunk, ``(path)`` returning an object with
  ``write(frame)`` and ``close()``;
- ``rows``: the file's row count when it is cheap to tell (Parquet's footer);
- ``split``: ``(path, rows)`` -> partitions of about ``rows`` rows that are read and
  scored apart (``Partition``: distributed scoring), for formats that can be split.

A format without the callable a job needs is one ConfigError naming the format and key.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import lzma
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from io import BufferedReader, RawIOBase
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from automl.atomic import discard, publish, temp_path
from automl.config import build
from automl.errors import ConfigError, DataError

COMPRESSION = {"gz": gzip.open, "bz2": bz2.open, "xz": lzma.open}
READ_ERRORS = (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError, pa.ArrowException)
PURPOSE = {
    "open": "ingest's reader",
    "read": "the whole file read at once",
    "stream": "the file read in chunks by predict and monitor",
    "append": "the file written chunk by chunk",
}


def suffix_format(suffix: str, formats: Any) -> str | None:
    """The name of the entry of ``formats`` whose ``suffixes`` hold ``suffix`` (a leading
    dot and the case do not matter), or None."""
    key = suffix.lstrip(".").lower()
    return next((name for name, spec in formats.items() if key in spec.get("suffixes", [])), None)


def known_suffixes(formats: Any) -> list[str]:
    """Every suffix ``formats`` knows, with its dot, sorted."""
    return sorted(f".{s}" for spec in formats.values() for s in spec.get("suffixes", []))


def format_callable(formats: Any, name: str, key: str) -> Callable[..., Any]:
    """``formats.<name>.<key>`` built; a format without it is one ConfigError."""
    node = formats[name].get(key)
    if node is None:
        able = [other for other, spec in formats.items() if spec.get(key) is not None]
        raise ConfigError(
            f"the {name} format has no '{key}' ({PURPOSE.get(key, key)}): formats.{name}.{key} "
            f"is not set; formats that have one: {', '.join(able)}"
        )
    return build(node)


def format_suffix(path: Path, formats: Any) -> tuple[int, str]:
    """The position in ``path.suffixes`` of its format's suffix, and the format's name."""
    suffixes = path.suffixes
    for at in range(len(suffixes) - 1, -1, -1):
        name = suffix_format(suffixes[at], formats)
        if name is not None:
            return at, name
    raise ConfigError(
        f"cannot tell the format of '{path}' from its suffix; known: "
        f"{', '.join(known_suffixes(formats))}"
    )


def format_name(path: Path, formats: Any) -> str:
    """The name of ``path``'s format (``.csv.gz`` counts as ``csv``)."""
    return format_suffix(path, formats)[1]


def split_suffix(path: Path, formats: Any) -> tuple[str, str]:
    """``path``'s name cut before its format suffix: ``a.b.csv.gz`` -> (``a.b``, ``.csv.gz``)."""
    at = format_suffix(path, formats)[0]
    tail = "".join(path.suffixes[at:])
    return path.name[: -len(tail)], tail


# --- reading in chunks -------------------------------------------------------------------


def pandas_chunks(
    path: Path, chunk_size: int, reader: Callable[..., Any], size_arg: str = "chunksize"
) -> Iterator[pd.DataFrame]:
    """Chunks from a pandas reader that streams when given a chunk size (CSV, JSON lines)."""
    with reader(path, **{size_arg: chunk_size}) as chunks:
        yield from chunks


def parquet_chunks(path: Path, chunk_size: int, **options: Any) -> Iterator[pd.DataFrame]:
    """Record batches of a Parquet file as DataFrames (``options`` go to ``iter_batches``)."""
    with pq.ParquetFile(path) as file:
        for batch in file.iter_batches(batch_size=chunk_size, **options):
            yield batch.to_pandas()


def whole_file_chunks(
    path: Path, chunk_size: int, reader: Callable[..., pd.DataFrame]
) -> Iterator[pd.DataFrame]:
    """Slices of a file that can only be read whole (a JSON array)."""
    frame = reader(path)
    for start in range(0, len(frame), chunk_size):
        yield frame.iloc[start : start + chunk_size]


def parquet_rows(path: Path) -> int:
    """A Parquet file's row count, from its footer."""
    return pq.ParquetFile(path).metadata.num_rows


def check_file(path: Path) -> None:
    """A DataError naming ``path`` when it is not a file or is empty."""
    if not path.is_file():
        raise DataError(f"input file '{path}' does not exist")
    if path.stat().st_size == 0:
        raise DataError(f"'{path}' is empty")


def numbered(path: Path, chunks: Iterator[pd.DataFrame], start: int = 0) -> Iterator[pd.DataFrame]:
    """``chunks`` read from ``path``, indexed by row number from ``start``; a read error is
    one DataError naming the path and, past the first chunk, the rows read before it."""
    with contextlib.closing(chunks):
        while True:
            try:
                chunk = next(chunks)
            except StopIteration:
                break
            except pd.errors.EmptyDataError as exc:
                raise DataError(f"'{path}' is empty or has no columns") from exc
            except READ_ERRORS as exc:
                where = f" after its first {start} rows" if start else ""
                raise DataError(f"cannot read '{path}'{where}: {exc}") from exc
            chunk.index = pd.RangeIndex(start, start + len(chunk))
            start += len(chunk)
            yield chunk


def read_chunks(path: str | Path, formats: Any, chunk_size: int) -> Iterator[pd.DataFrame]:
    """The rows of ``path`` in chunks of at most ``chunk_size``, read with its ``stream``.

    Each chunk is indexed by row number in the file (0, 1, ... across chunks). A file
    that is missing, empty, has no data rows or cannot be parsed (at any chunk) raises one
    DataError naming the path and, for a later chunk, the rows read before it.
    """
    path = Path(path).expanduser()
    check_file(path)
    stream = format_callable(formats, format_name(path, formats), "stream")
    rows = 0
    with contextlib.closing(numbered(path, stream(path, chunk_size))) as chunks:
        for chunk in chunks:
            rows += len(chunk)
            yield chunk
    if rows == 0:
        raise DataError(f"'{path}' has no data rows")


def count_rows(path: str | Path, formats: Any) -> int | None:
    """The number of rows of ``path`` when its format can tell cheaply (else None)."""
    path = Path(path).expanduser()
    spec = formats[format_name(path, formats)]
    if spec.get("rows") is None:
        return None
    try:
        return int(build(spec.rows)(path))
    except READ_ERRORS:
        return None


# --- partitions: an input split for scoring in parallel ---------------------------------


@dataclass(frozen=True)
class Partition:
    """``rows`` rows of ``path`` (None: all of it) whose first is row ``start`` of the input,
    read chunk by chunk wherever they are scored; this base reads the whole file with its
    format's ``stream``."""

    path: Path
    start: int = 0
    rows: int | None = None

    def chunks(self, formats: Any, chunk_size: int) -> Iterator[pd.DataFrame]:
        """The rows in chunks of at most ``chunk_size``, indexed by row number in the input."""
        return read_chunks(self.path, formats, chunk_size)

    def moved(self, rows: int) -> Partition:
        """The same rows, numbered ``rows`` further on (a later file of a folder)."""
        return replace(self, start=self.start + rows)


@dataclass(frozen=True)
class ParquetRows(Partition):
    """Rows of a Parquet file: the row groups that hold them are read in batches, and the
    first group's ``skip`` rows before them are read and dropped (so row groups of about a
    partition's size are read once, larger ones partly more than once)."""

    row_groups: tuple[int, ...] = ()
    skip: int = 0

    def chunks(self, formats: Any, chunk_size: int) -> Iterator[pd.DataFrame]:
        return numbered(self.path, self.batches(chunk_size), self.start)

    def batches(self, chunk_size: int) -> Iterator[pd.DataFrame]:
        skip, left = self.skip, self.rows or 0
        with pq.ParquetFile(self.path) as file:
            for batch in file.iter_batches(batch_size=chunk_size, row_groups=list(self.row_groups)):
                if skip >= batch.num_rows:
                    skip -= batch.num_rows
                    continue
                batch, skip = batch.slice(skip, left), 0
                left -= batch.num_rows
                yield batch.to_pandas()
                if left == 0:
                    return


@dataclass(frozen=True)
class LineRange(Partition):
    """Bytes ``begin`` to ``end`` of a text file of one record a line, read after its
    ``header`` with the format's ``stream``; a count other than ``rows`` (a quoted value
    with a line break moves records) is one DataError."""

    begin: int = 0
    end: int = 0
    header: bytes = b""

    def chunks(self, formats: Any, chunk_size: int) -> Iterator[pd.DataFrame]:
        rows = 0
        with contextlib.closing(
            numbered(self.path, self.lines(formats, chunk_size), self.start)
        ) as chunks:
            for chunk in chunks:
                rows += len(chunk)
                yield chunk
        if rows != self.rows:
            raise DataError(
                f"'{self.path}': {self.rows} records from row {self.start} of the input read "
                f"as {rows} rows (a quoted value with a line break?); score it with "
                "engine=local, or convert it to Parquet"
            )

    def lines(self, formats: Any, chunk_size: int) -> Iterator[pd.DataFrame]:
        stream = format_callable(formats, format_name(self.path, formats), "stream")
        with BufferedReader(ByteRange(self.path, self.begin, self.end, self.header)) as data:
            yield from stream(data, chunk_size)


class ByteRange(RawIOBase):
    """Bytes ``begin`` to ``end`` of a file after ``prefix``, as a readable stream."""

    def __init__(self, path: Path, begin: int, end: int, prefix: bytes = b"") -> None:
        self.file = path.open("rb")
        self.file.seek(begin)
        self.left = end - begin
        self.prefix = prefix

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self.prefix:
            n = min(len(view), len(self.prefix))
            view[:n], self.prefix = self.prefix[:n], self.prefix[n:]
            return n
        n = self.file.readinto(view[: min(len(view), self.left)]) if self.left > 0 else 0
        self.left -= n
        return n

    def close(self) -> None:
        self.file.close()
        super().close()


def parquet_split(path: Path, rows: int) -> list[Partition]:
    """A Parquet file as partitions of ``rows`` rows (row groups from its footer)."""
    with pq.ParquetFile(path) as file:
        meta = file.metadata
        sizes = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
    bounds = np.cumsum([0, *sizes])  # the first row of each row group, then the total
    parts: list[Partition] = []
    for first in range(0, int(bounds[-1]), rows):
        last = min(first + rows, int(bounds[-1]))
        groups = [g for g in range(len(sizes)) if bounds[g] < last and bounds[g + 1] > first]
        skip = first - int(bounds[groups[0]])
        parts.append(ParquetRows(path, first, last - first, tuple(groups), skip))
    return parts


def line_split(path: Path, rows: int, header: bool = True, block: int = 1 << 24) -> list[Partition]:
    """A text file of one record a line (CSV, TSV, JSON lines) as byte ranges of ``rows``
    records, found in one pass over its bytes; blank lines are no records (as pandas reads
    them); with ``header``, the first line names the columns of every range. A compressed
    file cannot be split: one partition."""
    if path.suffix.lstrip(".").lower() in (*COMPRESSION, "zip"):
        return [Partition(path)]
    starts: list[int] = []  # byte offsets of records 0, rows, 2 * rows, ...
    count, header_end = 0, None if header else 0
    offset = line_start = last = 0  # block offset, where the current line starts, last byte
    with path.open("rb") as file:
        while data := file.read(block):
            array = np.frombuffer(data, np.uint8)
            ends = np.flatnonzero(array == 10)
            begins = np.concatenate(([line_start - offset], ends[:-1] + 1))
            before = np.where(ends > 0, array[np.maximum(ends - 1, 0)], last)
            blank = (ends == begins) | ((ends - begins == 1) & (before == 13))
            records = (begins[~blank] + offset).tolist()
            if header_end is None and records:
                header_end = int(ends[~blank][0]) + offset + 1
                records = records[1:]
            starts += [at for i, at in enumerate(records, count) if i % rows == 0]
            count += len(records)
            if len(ends):
                line_start = int(ends[-1]) + offset + 1
            offset, last = offset + len(data), int(array[-1])
        if offset - line_start > 1 or (offset - line_start == 1 and last != 13):
            if header_end is None:  # a header without data rows, or without a newline
                header_end = offset
            else:
                starts += [line_start] if count % rows == 0 else []
                count += 1
        file.seek(0)
        head = file.read(header_end or 0)
    ends = [*starts[1:], offset]
    return [
        LineRange(path, k * rows, min(rows, count - k * rows), begin, end, head)
        for k, (begin, end) in enumerate(zip(starts, ends))
    ]


def natural(path: Path) -> list[Any]:
    """A sort key of ``path``'s name in which numbers compare as numbers (part-2 < part-10)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def partitions(source: str | Path, formats: Any, rows: int) -> list[Partition]:
    """``source`` split into partitions of at most ``rows`` rows, numbered across the
    input: a file with its format's ``split`` (a format without one is one partition), or
    the files of a folder in name order (hidden and ``_`` files left out), each of a
    format that splits (the rows of a file that does not cannot be numbered)."""
    path = Path(source).expanduser()
    files = [path]
    if path.is_dir():
        files = [f for f in path.iterdir() if f.is_file() and not f.name.startswith((".", "_"))]
        if not files:
            raise DataError(f"input folder '{path}' holds no files")
    parts: list[Partition] = []
    for file in sorted(files, key=natural):
        check_file(file)
        name = format_name(file, formats)
        split = formats[name].get("split")
        try:
            pieces = [Partition(file)] if split is None else build(split)(file, rows)
        except READ_ERRORS as exc:
            raise DataError(f"cannot read '{file}': {exc}") from exc
        if path.is_dir() and any(p.rows is None for p in pieces):
            able = [n for n, spec in formats.items() if spec.get("split") is not None]
            raise ConfigError(
                f"'{file}' cannot be split into partitions (a {name} file without "
                f"formats.{name}.split, or compressed): the files of an input folder must be "
                f"uncompressed and of a format that splits: {', '.join(able)}"
            )
        start = parts[-1].start + (parts[-1].rows or 0) if parts else 0
        parts += [p.moved(start) for p in pieces]
    if not parts:
        raise DataError(f"'{path}' has no data rows")
    return parts


# --- writing chunk by chunk ---------------------------------------------------------------


def open_text(path: Path) -> IO[str]:
    """``path`` opened for writing text, compressed when its suffix says so (.gz/.bz2/.xz)."""
    opener = COMPRESSION.get(path.suffix.lstrip(".").lower())
    if opener is not None:
        return opener(path, "wt", newline="", encoding="utf-8")
    return path.open("w", newline="", encoding="utf-8")


class CsvAppender:
    """CSV (or TSV) written chunk by chunk: the header once, then rows (``to_csv`` options)."""

    def __init__(self, path: Path, **options: Any) -> None:
        self.file = open_text(Path(path))
        self.options = options
        self.header = True

    def write(self, frame: pd.DataFrame) -> None:
        frame.to_csv(self.file, header=self.header, **self.options)
        self.header = False

    def close(self) -> None:
        self.file.close()


class JsonLinesAppender:
    """JSON lines written chunk by chunk, one record per line (``to_json`` options)."""

    def __init__(self, path: Path, **options: Any) -> None:
        self.file = open_text(Path(path))
        self.options = options

    def write(self, frame: pd.DataFrame) -> None:
        if len(frame):
            text = frame.to_json(orient="records", lines=True, **self.options)
            self.file.write(text if text.endswith("\n") else text + "\n")

    def close(self) -> None:
        self.file.close()


class JsonArrayAppender:
    """One JSON array of records, written chunk by chunk (``to_json`` options)."""

    def __init__(self, path: Path, **options: Any) -> None:
        self.file = open_text(Path(path))
        self.options = options
        self.first = True
        self.file.write("[")

    def write(self, frame: pd.DataFrame) -> None:
        if len(frame):
            text = frame.to_json(orient="records", **self.options).strip()[1:-1]
            self.file.write(text if self.first else "," + text)
            self.first = False

    def close(self) -> None:
        if not self.file.closed:
            self.file.write("]")
        self.file.close()


class ArrowAppender:
    """A columnar file written chunk by chunk (Parquet, Feather): subclasses open the writer.

    The first chunk with rows fixes the schema (unless ``schema`` gives it: another file's,
    for files meant to be read as one); a column that is entirely empty there is stored as
    text. Later chunks are converted to that schema (a column read as text in one chunk and
    as numbers in another is cast); a value that does not fit is a DataError naming the
    column. ``options`` go to the writer (e.g. ``compression``).
    """

    def __init__(self, path: Path, schema: pa.Schema | None = None, **options: Any) -> None:
        self.path = Path(path)
        self.options = options
        self.writer: Any = None
        self.schema = schema
        self.empty: pd.DataFrame | None = None

    def new_writer(self, schema: pa.Schema) -> Any:
        """A writer of ``self.path`` with ``schema`` (has ``write_table`` and ``close``)."""
        raise NotImplementedError

    def open(self, table: pa.Table | None) -> None:
        """Start the writer, with ``schema`` when given, else ``table``'s."""
        if self.schema is None:
            assert table is not None
            fields = [
                field.with_type(pa.large_string())
                if pa.types.is_null(field.type)
                or (table.num_rows and table.column(i).null_count == table.num_rows)
                else field
                for i, field in enumerate(table.schema)
            ]
            self.schema = pa.schema(fields, metadata=table.schema.metadata)
        self.writer = self.new_writer(self.schema)

    def conform(self, table: pa.Table) -> pa.Table:
        """``table`` with the writer's schema (columns in order, types cast)."""
        assert self.schema is not None
        if table.schema.equals(self.schema, check_metadata=False):
            return table
        columns = []
        for field in self.schema:
            if field.name not in table.column_names:
                columns.append(pa.nulls(table.num_rows, field.type))
                continue
            column = table.column(field.name)
            if column.type != field.type:
                try:
                    column = column.cast(field.type)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise DataError(
                        f"cannot write column '{field.name}' to '{self.path}': it holds "
                        f"{column.type} values here but {field.type} in earlier rows ({exc})"
                    ) from exc
            columns.append(column)
        return pa.Table.from_arrays(columns, schema=self.schema)

    def write(self, frame: pd.DataFrame) -> None:
        if self.writer is None and self.schema is None and not len(frame):
            self.empty = frame  # no rows yet: its dtypes are a last resort for the schema
            return
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self.writer is None:
            self.open(table)
        assert self.writer is not None
        self.writer.write_table(self.conform(table))

    def close(self) -> None:
        if self.writer is None and (self.schema is not None or self.empty is not None):
            empty = self.empty
            self.open(None if empty is None else pa.Table.from_pandas(empty, preserve_index=False))
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class ParquetAppender(ArrowAppender):
    """Parquet with ``pyarrow.parquet.ParquetWriter`` (``options`` go to it)."""

    def new_writer(self, schema: pa.Schema) -> pq.ParquetWriter:
        return pq.ParquetWriter(self.path, schema, **self.options)


class FeatherAppender(ArrowAppender):
    """Feather v2 (the Arrow IPC file format); ``options`` go to ``IpcWriteOptions``."""

    def new_writer(self, schema: pa.Schema) -> pa.ipc.RecordBatchFileWriter:
        return pa.ipc.new_file(
            str(self.path), schema, options=pa.ipc.IpcWriteOptions(**self.options)
        )


class StagedFile:
    """A table written chunk by chunk to a temp file beside ``path`` (with its ``append``,
    given ``options``).

    ``commit()`` renames it to ``path``; ``discard()`` removes it. Until ``commit`` nothing
    exists at ``path`` that was not there before.
    """

    def __init__(self, path: str | Path, formats: Any, **options: Any) -> None:
        self.path = Path(path).expanduser()
        append = format_callable(formats, format_name(self.path, formats), "append")
        self.tmp = temp_path(self.path, suffix=split_suffix(self.path, formats)[1])
        self.rows = 0
        try:
            self.writer = append(self.tmp, **options)
        except BaseException:
            discard(self.tmp)
            raise

    def write(self, frame: pd.DataFrame) -> None:
        self.writer.write(frame)
        self.rows += len(frame)

    def commit(self) -> Path:
        self.writer.close()
        return publish(self.tmp, self.path)

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()
        discard(self.tmp)
