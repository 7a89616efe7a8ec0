"""CSV, TSV and other delimited text, streamed with exact line numbers.

The encoding (utf-8, utf-8-sig/utf-16 by their BOM, cp1252, latin-1; with encoding=auto a
stray undecodable byte is read as cp1252), the delimiter (csv.Sniffer; the format's
``default_sep`` when it gives up) and the header (csv.Sniffer.has_header; ``names`` means
no header unless header=true) are detected on the first 64 KiB. The file is split into
records here (blocks without a quote character: one record per non-blank line; otherwise
the ``csv`` module), so each record's line number and raw text are known; pandas' C parser
types the good records one chunk at a time. A record with more fields than the columns is
ragged: with on_bad_rows=fail a DataError naming its line, otherwise it lands in
``Table.bad_rows`` and the rest is read.
"""

from __future__ import annotations

import csv
import io
import warnings
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pandas as pd

from automl.data.bad_rows import FAIL
from automl.errors import DataError
from automl.ingest.readers import base
from automl.ingest.readers.base import Options, Table
from automl.ingest.readers.source import Source, TextSource

SNIFF_LINES = 50


class LineFeed:
    """Lines for ``csv.reader``: a block's lines, then more from the stream when the block's
    last record goes on past it (a quoted field with line breaks)."""

    def __init__(self, lines: list[str], stream: io.TextIOBase) -> None:
        self.lines = lines
        self.stream = stream
        self.pos = 0
        self.extra: list[str] = []
        self.ran_out = False

    def __iter__(self) -> LineFeed:
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

    def __init__(
        self, source: Source, opts: Options, on_bad_rows: str, default_sep: str = ","
    ) -> None:
        super().__init__(source.name, on_bad_rows)
        # a quoted field may be longer than the csv module's default limit (128 KiB)
        csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))
        self.input = TextSource(source, opts.encoding, "delimited")
        self.na_values = opts.na_values
        text = self.input.head_text()
        lines = io.StringIO(text, newline="").readlines()
        sample_lines = [line for line in lines if not line.isspace()][:SNIFF_LINES]
        if not sample_lines:
            raise DataError(f"'{self.name}' has no data rows (only blank lines)")
        self.sep, self.quotechar = self._dialect(opts.sep, sample_lines, default_sep)
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

    def _dialect(self, sep: str, lines: list[str], default_sep: str) -> tuple[str, str]:
        sample = "".join(lines)
        quotechar = '"'
        if sep == "auto":
            try:
                sniffed = csv.Sniffer().sniff(sample, delimiters=",\t;| ")
                sep = sniffed.delimiter
                if sniffed.quotechar in ("'", '"'):
                    quotechar = sniffed.quotechar
            except csv.Error:
                sep = self._count_delimiter(lines, default_sep)
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
        feed = LineFeed(lines, stream)
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
        block = base.BLOCK_CHARS if record else min(base.BLOCK_CHARS, max(1 << 16, size * 256))
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
                if bad and self.on_bad_rows == FAIL:
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
