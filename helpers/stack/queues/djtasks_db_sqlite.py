"""django-tasks-db on SQLite: the task rows live in the site's own database file (the run folder's site.sqlite3),
no server; db_worker polls the table."""

from __future__ import annotations

from helpers.stack.queues import register
from helpers.stack.queues.djtasks_db_worker import TasksDbWorker


@register
class TasksDbSqlite(TasksDbWorker):
    name = "djtasks_db_sqlite"
    label = "Django Tasks DB, SQLite"
