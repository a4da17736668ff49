"""django-tasks-db on SQLite: the task rows live in the site's own database file (the run folder's site.sqlite3),
no server; db_worker polls the table."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

from helpers.stack.queues import register
from helpers.stack.queues.djtasks_db_worker import TasksDbWorker
from helpers.stack.queues.huey_sqlite import read_only


@register
class TasksDbSqlite(TasksDbWorker):
    name = "djtasks_db_sqlite"
    label = "Django Tasks DB, SQLite"

    def connection(self):
        return contextlib.closing(read_only(self.lab.site_db))

    def sql_time(self, moment: datetime) -> str:
        """As Django's SQLite backend stores an aware datetime: UTC, as text, without the offset."""
        return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ")

    @property
    def location(self) -> str:
        return str(self.lab.site_db)
