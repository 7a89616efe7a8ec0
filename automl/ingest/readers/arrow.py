"""Parquet and Feather/Arrow IPC: record batches, never the whole table at once."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from automl.errors import DataError
from automl.ingest.readers.base import Options, Table, numbered, string_columns
from automl.ingest.readers.source import Source

Batches = Callable[[int], Iterator[pa.RecordBatch]]


class ArrowTable(Table):
    """A columnar file read batch by batch; subclasses say how the file is opened."""

    def __init__(self, source: Source, opts: Options, on_bad_rows: str) -> None:
        super().__init__(source.name, on_bad_rows)
        self.input = source
        try:
            schema, rows = self._open_meta()
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise DataError(f"'{self.name}' is not a readable {self.format} file: {exc}") from exc
        if rows == 0:
            raise DataError(f"'{self.name}' has no data rows")
        self.detected.update(columns=list(schema.names), rows=rows)

    def _open_meta(self) -> tuple[pa.Schema, int]:
        with self._reader() as (schema, rows, _):
            return schema, rows

    def _reader(self) -> contextlib.AbstractContextManager[tuple[pa.Schema, int, Batches]]:
        """(schema, row count, batches(size) -> record batches) of the file."""
        raise NotImplementedError

    def _frames(self, size: int, record: bool) -> Iterator[pd.DataFrame]:
        try:
            with self._reader() as (_, _, batches):
                frames = (string_columns(b.to_pandas()) for b in batches(size))
                yield from numbered(frames, size)
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"cannot read '{self.name}': {exc}") from exc


class ParquetTable(ArrowTable):
    """A Parquet file: its row count from the footer, batches read one at a time."""

    format = "parquet"

    @contextlib.contextmanager
    def _reader(self) -> Iterator[tuple[pa.Schema, int, Batches]]:
        parquet = pq.ParquetFile(self.input.file_or_buffer())
        try:
            rows = parquet.metadata.num_rows
            yield parquet.schema_arrow, rows, lambda size: parquet.iter_batches(size)
        finally:
            parquet.close()


class FeatherTable(ArrowTable):
    """Feather v2 (the Arrow IPC file format, memory-mapped), an IPC stream or Feather v1."""

    format = "feather"

    @contextlib.contextmanager
    def _reader(self) -> Iterator[tuple[pa.Schema, int, Batches]]:
        handle = self.input.file_or_buffer()
        if isinstance(handle, str):
            source = pa.memory_map(handle)
        else:
            source = pa.BufferReader(handle.getvalue())
        with source:
            try:
                reader = ipc.open_file(source)
                batches = [reader.get_batch(i) for i in range(reader.num_record_batches)]
                schema = reader.schema
            except pa.ArrowInvalid:  # an IPC stream, or Feather v1
                source.seek(0)
                try:
                    table = ipc.open_stream(source).read_all()
                except pa.ArrowInvalid:
                    source.seek(0)
                    table = feather.read_table(source)
                batches, schema = table.to_batches(), table.schema
            rows = sum(batch.num_rows for batch in batches)
            yield schema, rows, lambda size: slices(batches, size)


def slices(batches: list[pa.RecordBatch], size: int) -> Iterator[pa.RecordBatch]:
    """Record batches cut to at most ``size`` rows (zero-copy slices)."""
    for batch in batches:
        for begin in range(0, batch.num_rows, size):
            yield batch.slice(begin, size)
