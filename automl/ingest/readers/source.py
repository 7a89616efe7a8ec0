"""Opening an input: a URL downloaded into the cache, a local file with its compression,
and the text side of a file (encoding detection, binary files named like text, the line of
an undecodable byte)."""

from __future__ import annotations

import bz2
import codecs
import contextlib
import gzip
import hashlib
import io
import logging
import lzma
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from automl.atomic import staged
from automl.errors import ConfigError, DataError
from automl.ingest.readers.base import PROBE_BYTES

log = logging.getLogger(__name__)

COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zip": "zip"}
OPENERS: dict[str | None, Callable[..., Any]] = {
    "gzip": gzip.open,
    "bz2": bz2.open,
    "xz": lzma.open,
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


def _fallback_decode(exc: UnicodeError) -> tuple[str, int]:
    """Codec error handler for encoding=auto: bytes invalid in the detected encoding are read
    as cp1252 (latin-1 for the 5 bytes cp1252 leaves undefined) instead of failing."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    bad = exc.object[exc.start : exc.end]
    return "".join(_CP1252[b] for b in bad), exc.end


_CP1252 = [bytes([b]).decode("cp1252", errors="ignore") or chr(b) for b in range(256)]
codecs.register_error("automl.ingest.fallback", _fallback_decode)


class LimitedStream(io.RawIOBase):
    """The bytes of ``raw``, stopping with a DataError once more than ``limit`` are read."""

    def __init__(self, raw: BinaryIO, limit: int, name: str) -> None:
        super().__init__()
        self.raw, self.limit, self.name, self.count = raw, limit, name, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(min(len(buffer), self.limit + 1 - self.count))
        self.count += len(data)
        if self.count > self.limit:
            raise DataError(
                f"'{self.name}' decompresses to more than {self.limit} bytes "
                "(max_decompressed_bytes); raise max_decompressed_bytes if the file is trusted"
            )
        buffer[: len(data)] = data
        return len(data)


class Source:
    """A local file, possibly compressed (by its last suffix): opens its decompressed bytes.

    ``suffix`` is the suffix that names its format: the one before the compression suffix,
    or a zip archive's one member's. ``max_bytes`` bounds the decompressed bytes of each
    read of a compressed file (a DataError once exceeded: no zip bomb fills the memory).
    """

    def __init__(self, path: Path, name: str | None = None, max_bytes: int | None = None) -> None:
        self.path = path
        self.name = name or str(path)
        self.max_bytes = max_bytes
        suffixes = [s.lower() for s in path.suffixes]
        self.compression = COMPRESSIONS.get(suffixes[-1]) if suffixes else None
        inner = suffixes[:-1] if self.compression else suffixes
        self.member: str | None = None
        if self.compression == "zip":
            self.member = self._zip_member()
            inner = [s.lower() for s in Path(self.member).suffixes] or inner
        self.suffix = inner[-1] if inner else ""

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
                if self.compression == "zip":
                    archive = stack.enter_context(zipfile.ZipFile(self.path))
                    stream = stack.enter_context(archive.open(self.member))
                else:
                    opener = OPENERS.get(self.compression, open)
                    stream = stack.enter_context(opener(self.path, "rb"))
            except (OSError, zipfile.BadZipFile) as exc:
                raise DataError(f"cannot open '{self.name}': {exc}") from exc
            if self.compression is not None and self.max_bytes is not None:
                limited = LimitedStream(stream, self.max_bytes, self.name)
                stream = stack.enter_context(io.BufferedReader(limited))
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


def check_text(head: bytes, name: str, fmt: str, encoding: str) -> None:
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


def detect_encoding(head: bytes, at_eof: bool) -> str:
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


class TextSource:
    """The decoding side of a text file: encoding detection and undecodable bytes located."""

    def __init__(self, source: Source, encoding: str, fmt: str) -> None:
        self.source = source
        self.name = source.name
        head = source.head(PROBE_BYTES)
        if not head:
            raise DataError(f"'{self.name}' is empty")
        self.head = head
        self.at_eof = len(head) < PROBE_BYTES
        check_text(head, self.name, fmt, encoding)
        if encoding == "auto":
            self.encoding = detect_encoding(head, self.at_eof)
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


def download(
    url: str, cache_dir: str | None, max_bytes: int | None = None, timeout: float = 60.0
) -> Path:
    """``url`` fetched once into ``cache_dir`` (``paths.cache_dir``), atomically; more than
    ``max_bytes`` (``max_download_bytes``) stops it with a DataError, the partial file removed."""
    if not cache_dir:
        raise ConfigError(f"cannot download '{url}': paths.cache_dir is not set")
    cache = Path(cache_dir).expanduser()
    name = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name or "download"
    dest = cache / "ingest" / hashlib.sha256(url.encode()).hexdigest()[:16] / name
    if dest.is_file():
        log.info("using the cached download of %s: %s", url, dest)
        return dest
    too_big = DataError(
        f"'{url}' is larger than {max_bytes} bytes (max_download_bytes); "
        "raise max_download_bytes if the source is trusted"
    )
    log.info("downloading %s -> %s", url, dest)
    try:
        with (
            staged(dest) as tmp,
            tmp.open("wb") as out,
            urllib.request.urlopen(url, timeout=timeout) as resp,
        ):
            declared = resp.headers.get("Content-Length", "")
            if max_bytes is not None and declared.isdigit() and int(declared) > max_bytes:
                raise too_big
            total = 0
            while block := resp.read(1 << 20):
                total += len(block)
                if max_bytes is not None and total > max_bytes:
                    raise too_big
                out.write(block)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot download '{url}': {exc}") from exc
    return dest
