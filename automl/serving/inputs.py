"""Request bodies to rows: JSON (one record, a list, or ``{"columns", "data"}``), CSV,
Arrow IPC (stream or file) or Parquet, read with a size limit and parsed with a row limit
that applies before or while parsing: JSON that cannot hold more rows than the limit
(counted by its brackets) is parsed at once, other JSON item by item, refused with 413 at
the first record or row over the limit; a CSV is read at most one row past it; Parquet
says its row count before its rows are read (Arrow is bounded by the body's size). A body
of millions of tiny rows never becomes millions of objects.

JSON records come back as ``dict`` s (what the fast path reads); the columnar forms (the
columnar JSON, CSV, Arrow, Parquet) as a ``DataFrame``, built column by column, never row
by row.

Every way a body can be wrong is an ``ApiError`` with a 4xx status and a message that
says what to send instead; nothing here raises anything else.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from starlette.requests import Request

from automl.plain import SCALARS, encodable

WHITESPACE = re.compile(r"[ \t\n\r]*")
DECODER = json.JSONDecoder()
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # how JSON text spells a surrogate
FORMS = 'one record {"col": value, ...}, a list of records, or {"columns": [...], "data": [[...]]}'


class ApiError(Exception):
    """An HTTP error answered as ``{"detail": message, "errors": [...]}``."""

    def __init__(self, status: int, message: str, errors: list[dict] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors or []


ARROW = ("application/vnd.apache.arrow.stream", "application/vnd.apache.arrow.file")
PARQUET = ("application/vnd.apache.parquet", "application/x-parquet")
Rows = list[dict] | pd.DataFrame  # records, or a table read column by column


def parse(body: bytes, content_type: str, max_rows: int) -> Rows:
    """The rows of a request body (``ApiError`` for an empty, malformed or huge one)."""
    if not body.strip():
        raise ApiError(422, f"the body is empty: send {FORMS} (JSON), or a CSV with a header")
    kind = content_type.split(";")[0].strip().lower()
    if kind in ("text/csv", "application/csv"):
        records = parse_csv(body, max_rows)
    elif kind in ("", "application/json", "*/*") or kind.endswith("+json"):
        records = parse_json(body, max_rows)
    elif kind in ARROW or kind in PARQUET:
        records = parse_table(body, kind, max_rows)
    else:
        raise ApiError(
            415,
            f"unsupported Content-Type '{kind}': use application/json, text/csv, "
            f"{ARROW[0]} or {PARQUET[0]}",
        )
    if not len(records):
        raise ApiError(422, f"no records in the body: send {FORMS}")
    if len(records) > max_rows:
        raise too_many(max_rows)
    return records


def too_many(max_rows: int) -> ApiError:
    return ApiError(413, f"too many records in one request: at most {max_rows} (split the batch)")


def parse_json(body: bytes, max_rows: int) -> Rows:
    try:
        text = body.decode("utf-8-sig")
        if text.count("{") <= max_rows + 1 and text.count("[") <= max_rows + 2:
            data = json.loads(text)  # no list of records or rows can be over the limit
        else:
            data = load_json(text, max_rows)
    except UnicodeDecodeError:
        raise ApiError(400, "the body is not UTF-8 text") from None
    except ValueError as exc:
        raise ApiError(400, f"malformed JSON: {exc}") from None
    except RecursionError:
        raise ApiError(400, "malformed JSON: nested too deeply") from None
    if isinstance(data, dict) and set(data) == {"columns", "data"}:
        columns, rows = columnar(data["columns"], data["data"])
        if SURROGATE_ESCAPE.search(text):
            check_unicode([dict(zip(columns, row)) for row in rows])
        return pd.DataFrame(rows, columns=pd.Index(columns, dtype=object))
    records = check_records([data] if isinstance(data, dict) else data)
    if SURROGATE_ESCAPE.search(text):
        check_unicode(records)
    return records


def check_records(records: Any) -> list[dict]:
    """Records of scalars (422 naming each record and column that is not)."""
    if not isinstance(records, list):
        raise ApiError(422, f"expected {FORMS}; got a JSON {type(records).__name__}")
    errors = []
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            errors.append({"row": i, "expected": "a JSON object (one record)"})
            continue
        for column, value in record.items():
            if not isinstance(value, SCALARS):
                errors.append({"row": i, "column": column, "expected": "a scalar value"})
    if errors:
        raise ApiError(422, f"malformed records: expected {FORMS}", errors[:20])
    return records


def check_unicode(records: list[dict]) -> None:
    """422 naming each record and column whose name or text is not valid Unicode."""
    errors = [
        {"row": i, "column": column, "expected": "valid Unicode text (no lone surrogate)"}
        for i, record in enumerate(records)
        for column, value in record.items()
        if not encodable(column) or (isinstance(value, str) and not encodable(value))
    ]
    if errors:
        raise ApiError(422, "invalid Unicode in the records", errors[:20])


def load_json(text: str, max_rows: int) -> Any:
    """The JSON value of ``text``; a top-level array, or the ``"data"`` array of a top-level
    object, is decoded item by item: 413 at item ``max_rows + 1``, before the rest is read."""
    value, end = decode(text, skip(text, 0), max_rows, top=True)
    if skip(text, end) != len(text):
        raise json.JSONDecodeError("Extra data", text, skip(text, end))
    return value


def decode(text: str, pos: int, max_rows: int, top: bool = False) -> tuple[Any, int]:
    """(value, end) of the JSON value at ``pos``, bounding the arrays that hold rows."""
    if text.startswith("[", pos):
        return bounded_array(text, pos, max_rows)
    if top and text.startswith("{", pos):
        return top_object(text, pos, max_rows)
    return DECODER.raw_decode(text, pos)


def bounded_array(text: str, pos: int, max_rows: int) -> tuple[list, int]:
    items: list = []
    pos = skip(text, pos + 1)
    if text.startswith("]", pos):
        return items, pos + 1
    while True:
        item, pos = DECODER.raw_decode(text, pos)
        items.append(item)
        if len(items) > max_rows:
            raise too_many(max_rows)
        pos = expect(text, skip(text, pos), ",]")
        if text[pos - 1] == "]":
            return items, pos
        pos = skip(text, pos)


def top_object(text: str, pos: int, max_rows: int) -> tuple[dict, int]:
    """A top-level object: one record, or the columnar form (its ``data`` bounded)."""
    found: dict = {}
    pos = skip(text, pos + 1)
    if text.startswith("}", pos):
        return found, pos + 1
    while True:
        if not text.startswith('"', pos):
            raise json.JSONDecodeError("Expecting property name in double quotes", text, pos)
        key, pos = DECODER.raw_decode(text, pos)
        pos = skip(text, expect(text, skip(text, pos), ":"))
        found[key], pos = (
            decode(text, pos, max_rows) if key == "data" else DECODER.raw_decode(text, pos)
        )
        pos = expect(text, skip(text, pos), ",}")
        if text[pos - 1] == "}":
            return found, pos
        pos = skip(text, pos)


def skip(text: str, pos: int) -> int:
    """The position after the JSON whitespace at ``pos``."""
    return WHITESPACE.match(text, pos).end()  # type: ignore[union-attr]


def expect(text: str, pos: int, chars: str) -> int:
    """The position after one of ``chars`` at ``pos`` (a JSON syntax error otherwise)."""
    if pos < len(text) and text[pos] in chars:
        return pos + 1
    raise json.JSONDecodeError(f"Expecting one of {' '.join(chars)}", text, pos)


def columnar(columns: Any, data: Any) -> tuple[list[str], list[list]]:
    """The columnar form's columns and rows, once its shape is checked."""
    if not (isinstance(columns, list) and all(isinstance(c, str) for c in columns)):
        raise ApiError(422, '"columns" must be a list of column names (strings)')
    if len(set(columns)) != len(columns):
        raise ApiError(422, '"columns" names a column twice')
    if not isinstance(data, list):
        raise ApiError(422, '"data" must be a list of rows (lists of values)')
    errors = []
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) != len(columns):
            errors.append({"row": i, "expected": f"a list of {len(columns)} values"})
        elif not all(isinstance(v, SCALARS) for v in row):
            errors.append({"row": i, "expected": "scalar values"})
    if errors:
        raise ApiError(422, "malformed columnar body", errors[:20])
    return columns, data


def parse_csv(body: bytes, max_rows: int) -> pd.DataFrame:
    try:
        frame = pd.read_csv(io.BytesIO(body), nrows=max_rows + 1)
    except Exception as exc:  # pandas and the csv module raise several kinds for bad text
        raise ApiError(400, f"malformed CSV: {str(exc).strip()}") from None
    if frame.columns.duplicated().any() or any(str(c).startswith("Unnamed: ") for c in frame):
        raise ApiError(400, "malformed CSV: the header must name every column once")
    if len(frame) > max_rows:
        raise too_many(max_rows)
    return frame


def parse_table(body: bytes, kind: str, max_rows: int) -> pd.DataFrame:
    """An Arrow IPC (stream or file) or Parquet body (a Parquet file's row count is checked
    before its rows are read); its column names must be distinct strings."""
    try:
        if kind in PARQUET:
            parquet = pq.ParquetFile(pa.BufferReader(body))
            rows, read = parquet.metadata.num_rows, parquet.read
        else:
            opener = pa.ipc.open_stream if kind == ARROW[0] else pa.ipc.open_file
            reader = opener(pa.BufferReader(body))
            rows, read = None, reader.read_all
        table = read() if rows is None or rows <= max_rows else None
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise ApiError(400, f"malformed {kind.rsplit('.', 1)[-1]} body: {exc}") from None
    if table is None or table.num_rows > max_rows:
        raise too_many(max_rows)
    names = table.column_names
    if len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
        raise ApiError(400, f"malformed {kind.rsplit('.', 1)[-1]} body: name every column once")
    try:
        return table.to_pandas()
    except (pa.ArrowException, ValueError, TypeError) as exc:  # e.g. a type pandas lacks
        raise ApiError(422, f"a column cannot be read: {exc}") from None


async def read_body(request: Request, limit: int) -> bytes:
    """The body, or 413 as soon as it is known to be larger than ``limit`` bytes."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise ApiError(413, f"the body has {length} bytes; at most {limit} (split the batch)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"the body is larger than {limit} bytes (split the batch)")
        chunks.append(chunk)
    return b"".join(chunks)
