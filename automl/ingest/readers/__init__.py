"""Readers of ``python -m automl.ingest``: any supported input opened as a :class:`Table`.

``open_table(source, formats, options, cache_dir, on_bad_rows)`` recognises the input (a
file by its suffix, a compressed file by its inner suffix, an ``http(s)://`` URL downloaded
into the cache, an SQLAlchemy URL), checks that it can be read and has data rows, and
returns a :class:`Table`: ``sample(n)`` for type inference, then ``chunks(size)`` for every
row with bounded memory (Excel, JSON documents and LibSVM are read whole: their formats
are). The reader of a file is its format's ``open`` in ``formats`` (the formats registry,
``cfg.formats``): one module per format family (delimited, arrow, json, excel, libsvm,
sql) beside what they share (base: options, tables, bad rows; source: opening a file).

Row numbers: a chunk's index is the 1-based line number in a text file (delimited text,
JSON lines, LibSVM; a header line and blank lines count; a record spanning lines has its
first line's number) and the 1-based row number for the other formats (Excel, Parquet,
Feather/Arrow, JSON documents, SQL).
"""

from __future__ import annotations

import logging
import re
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from automl.data.bad_rows import FAIL, check_on_bad_rows
from automl.errors import ConfigError, DataError
from automl.ingest.readers.base import Options, Table
from automl.ingest.readers.source import COMPRESSIONS, Source, download
from automl.ingest.readers.sql import SqlTable
from automl.io import format_callable, known_suffixes, suffix_format

__all__ = ["Options", "Table", "open_table", "table_chunks"]

log = logging.getLogger(__name__)
SQL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def named_format(name: str, formats: Any) -> str:
    """The entry of ``formats`` the reader option ``format`` names: an entry's name, one of
    its suffixes or one of its ``aliases``."""
    for entry, spec in formats.items():
        if name == entry or name in spec.get("suffixes", []) or name in spec.get("aliases", []):
            return entry
    known = sorted(
        {n for entry, spec in formats.items() for n in [entry, *spec.get("aliases", [])]}
    )
    raise ConfigError(
        f"reader option format {name!r} unknown; known: {', '.join(known)} "
        f"(or a suffix: {', '.join(known_suffixes(formats))})"
    )


def open_table(
    source: str,
    formats: Any,
    options: dict | None = None,
    cache_dir: str | None = None,
    on_bad_rows: str = FAIL,
    max_download_bytes: int | None = None,
    max_decompressed_bytes: int | None = None,
) -> Table:
    """Open ``source`` (a file, an ``http(s)://`` URL or an SQLAlchemy URL) for reading,
    with its format's ``open`` from ``formats`` (the reader option ``format`` overrides the
    suffix). A download stops past ``max_download_bytes``, a read of a compressed file past
    ``max_decompressed_bytes`` (DataErrors naming the key; None: no limit).

    Raises DataError, naming the file and line, when it is missing, empty, binary,
    undecodable, of an unknown format, or an SQL query fails; ConfigError for bad options.
    """
    opts = Options(options)
    on_bad_rows = check_on_bad_rows(on_bad_rows)
    source = str(source)
    name = source
    if source.startswith(("http://", "https://")):
        path = download(source, cache_dir, max_download_bytes)
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
    if path.stat().st_size == 0:
        raise DataError(f"'{name}' is empty (0 bytes)")
    src = Source(path, name, max_decompressed_bytes)
    fmt = named_format(opts.format, formats) if opts.format else suffix_format(src.suffix, formats)
    if fmt is None:
        what = src.suffix or "(no suffix)"
        if src.compression:
            what += f" inside {path.suffix}"
        raise DataError(
            f"'{name}': unknown file type '{what}'; known: {', '.join(known_suffixes(formats))} "
            f"(optionally compressed: {', '.join(COMPRESSIONS)}); or set the reader option format"
        )
    log.debug("reading %s as %s (compression: %s)", name, fmt, src.compression)
    return format_callable(formats, fmt, "open")(src, opts, on_bad_rows)


def table_chunks(
    path: str | Path,
    chunk_size: int,
    open: Callable[..., Table],  # noqa: A002 - the formats registry's key
    options: dict | None = None,
) -> Iterator[pd.DataFrame]:
    """Chunks of a file read with a format's ``open`` (an ingest reader): the ``stream`` of
    formats pandas cannot read in chunks (Feather, Excel, LibSVM, sniffed text), for predict
    and monitor. A row the reader cannot split stops the read (on_bad_rows=fail)."""
    table = open(Source(Path(path)), Options(options), FAIL)
    yield from table.chunks(chunk_size)
