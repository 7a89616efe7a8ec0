"""One way to open the database behind a shared store (auth, prediction log, registry):
any SQLAlchemy URL, PostgreSQL for a team, an SQLite file for one machine."""

from __future__ import annotations

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
