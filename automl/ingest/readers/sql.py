"""SQL: a query (or a whole table) through SQLAlchemy, read in chunks. Selected by the
input's URL scheme (``sqlite:///shop.db``, ``postgresql://...``) or, for an SQLite file,
by the ``sqlite`` format's suffixes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from automl.errors import ConfigError, DataError
from automl.ingest.readers.base import Options, Table, numbered, string_columns
from automl.ingest.readers.source import Source


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
                yield from numbered((string_columns(f) for f in frames), size)
        except (sa.exc.SQLAlchemyError, pd.errors.DatabaseError) as exc:
            raise self._error(exc) from exc


def open_database_file(source: Source, opts: Options, on_bad_rows: str) -> SqlTable:
    """An SQLite database file, read with the reader option ``query`` or ``table``."""
    if source.compression:
        raise DataError(f"'{source.name}': decompress the database file first")
    return SqlTable(f"sqlite:///{source.path.resolve()}", opts, on_bad_rows)
