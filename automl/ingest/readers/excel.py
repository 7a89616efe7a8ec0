"""Excel workbooks (.xlsx, .xlsm, .xls), read whole: the format is."""

from __future__ import annotations

import zipfile

import pandas as pd

from automl.errors import DataError
from automl.ingest.readers.base import FrameTable, Options
from automl.ingest.readers.source import Source


def read_excel(source: Source, opts: Options, on_bad_rows: str) -> FrameTable:
    """A workbook's sheet (``sheet``: a name or position, default the first), read whole."""
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
            f"cannot read '{source.name}' as an Excel workbook ({source.suffix}): {exc}"
        ) from exc
    if not header and opts.names is None:
        frame.columns = [f"column_{i}" for i in range(1, frame.shape[1] + 1)]
    table = FrameTable(source.name, on_bad_rows, "excel", frame)
    table.detected.update(sheet=sheet, header=bool(header))
    return table
