"""django-tasks-db on PostgreSQL: the task rows live in Django's database, the run's own PostgreSQL server
(helpers.stack.postgres_server), so enqueueing inside the request's transaction commits or rolls back with it;
db_worker polls the table (no LISTEN)."""

from __future__ import annotations

from helpers.stack import postgres_server
from helpers.stack.queues import register
from helpers.stack.queues.djtasks_db_worker import TasksDbWorker


@register
class TasksDbPostgres(postgres_server.UsesPostgres, TasksDbWorker):
    name = "djtasks_db_postgres"
    label = "Django Tasks DB, PostgreSQL"
