"""JSON documents (records, columnar or one of pandas' orients; read whole) and JSON lines
(one object per line, streamed; a line that is not an object is a bad row)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pandas as pd

from automl.errors import DataError
from automl.ingest.readers import base
from automl.ingest.readers.base import FrameTable, Options, Table, mask_na, string_columns
from automl.ingest.readers.source import Source, TextSource


class JsonLinesTable(Table):
    """JSON lines: one object per line, streamed; a line that is not a JSON object is a bad
    row with its line number."""

    format = "jsonl"

    def __init__(self, source: Source, opts: Options, on_bad_rows: str) -> None:
        super().__init__(source.name, on_bad_rows)
        self.input = TextSource(source, opts.encoding, "JSON lines")
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
                    lines = stream.readlines(base.BLOCK_CHARS)
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
        frame = string_columns(pd.DataFrame.from_records(rows))
        columns.update(dict.fromkeys(frame.columns))  # columns in order of first appearance
        frame = frame.reindex(columns=list(columns))
        frame.index = pd.Index(starts, dtype="int64")
        return mask_na(frame, self.na_values)


def read_json(source: Source, opts: Options, on_bad_rows: str) -> FrameTable:
    text_input = TextSource(source, opts.encoding, "JSON")
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
        frame, layout = json_frame(data, source.name, opts.names)
    except (ValueError, TypeError, AttributeError) as exc:
        raise DataError(f"cannot read '{source.name}' as a table: {exc}") from exc
    table = FrameTable(source.name, on_bad_rows, "json", mask_na(frame, opts.na_values))
    table.detected.update(layout=layout, encoding=text_input.encoding)
    return table


def json_frame(data: Any, name: str, names: list[str] | None) -> tuple[pd.DataFrame, str]:
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
