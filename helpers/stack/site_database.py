"""The site's own Django database, opened the way the site's settings open it, for the lab's read-only checks.

Which database the site uses follows from its queue backend (labsite/settings.py, QUEUE_BACKENDS: a backend on
PostgreSQL moves DATABASES there too), so the backend object says which one this is
(helpers.stack.queues.QueueBackend.site_database). Both kinds answer `conn.execute(sql, params)`; `sql` takes the
driver's placeholder, `placeholder`.
"""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from helpers.stack.postgres_server import PostgresServer


def sqlite_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection: in WAL mode a reader never blocks a writer."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)


class SiteDatabase:
    """One database of the site: how to connect, the driver's parameter style, how it stores a moment."""

    placeholder: ClassVar[str]

    def connect(self) -> contextlib.AbstractContextManager:
        """An open DB-API connection for the length of a `with` block."""
        raise NotImplementedError

    def moment(self, when: datetime):
        """`when` as the database compares it with a DateTimeField."""
        return when

    def query(self, sql: str, params=()) -> list[tuple]:
        """Rows of `sql`, written with `?` placeholders, over a connection of its own."""
        with self.connect() as conn:
            return conn.execute(sql.replace("?", self.placeholder), params).fetchall()

    @property
    def location(self) -> str:
        raise NotImplementedError


class SqliteFile(SiteDatabase):
    """The site's SQLite file in the run folder (the settings' default DATABASES)."""

    placeholder = "?"
    NAME = "site.sqlite3"  # labsite/settings.py: RUN_DIR / "site.sqlite3"

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / self.NAME

    def connect(self) -> contextlib.AbstractContextManager:
        return contextlib.closing(sqlite_read_only(self.path))

    def moment(self, when: datetime) -> str:
        """As Django's SQLite backend stores an aware datetime: UTC, as text, without the offset."""
        return when.astimezone(UTC).replace(tzinfo=None).isoformat(" ")

    @property
    def location(self) -> str:
        return str(self.path)


class PostgresDatabase(SiteDatabase):
    """The run's PostgreSQL server (helpers.stack.postgres_server), where a PostgreSQL backend's site keeps
    DATABASES."""

    placeholder = "%s"

    def __init__(self, server: PostgresServer):
        self.server = server

    def connect(self) -> contextlib.AbstractContextManager:
        return self.server.connect()

    @property
    def location(self) -> str:
        return self.server.url
