"""One way to open the database behind a shared store (auth, prediction log, registry):
any SQLAlchemy URL, PostgreSQL for a team, an SQLite file for one machine."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from automl.config import sqlite_path


def open_database(url: str) -> sa.Engine:
    """An engine for ``url``: an SQLite file gets its folder, WAL and a busy timeout (readers
    never wait for the writer); a server's connections are checked before use, so a
    restarted database costs a reconnect, not an error."""
    database = sqlite_path(url)
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)
    if sa.make_url(url).get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True)
    engine = sa.create_engine(url)
    sa.event.listen(engine, "connect", sqlite_pragmas)
    return engine


def sqlite_pragmas(connection: Any, _record: Any) -> None:
    """WAL and a busy timeout, so a server reads while a command-line tool writes."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def replace_prefix(
    url: str, columns: Iterable[tuple[str, str]], old: str, new: str
) -> dict[str, int]:
    """In the database at ``url``, every value of ``columns`` ((table, column) pairs; those
    missing are skipped) that is ``old`` or starts with ``old/`` made to start with ``new``
    instead (paths a store records, after the store moved); {"table.column": rows changed}."""
    engine = open_database(url)
    changed = {}
    try:
        with engine.begin() as db:
            schema = sa.inspect(db)
            tables = set(schema.get_table_names())
            for table, column in columns:
                if table not in tables or column not in {
                    c["name"] for c in schema.get_columns(table)
                }:
                    continue
                value = sa.column(column, sa.Text)
                update = (
                    sa.update(sa.table(table, value))
                    .where(
                        sa.or_(value == old, sa.func.substr(value, 1, len(old) + 1) == old + "/")
                    )
                    .values(
                        {
                            column: sa.literal(new, sa.Text).concat(
                                sa.func.substr(value, len(old) + 1)
                            )
                        }
                    )
                )
                changed[f"{table}.{column}"] = db.execute(update).rowcount
    finally:
        engine.dispose()
    return changed
