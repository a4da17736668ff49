"""django-vtasks' database backend through Django's Tasks API, on the run's PostgreSQL server
(helpers.stack.postgres_server), Django's database too: an enqueue is one INSERT in the request's transaction; the
worker polls the table (0.1 s after a task, doubling to 1 s while idle) and claims with SKIP LOCKED."""

from __future__ import annotations

from datetime import UTC, datetime

from helpers.stack import postgres_server
from helpers.stack.queues import register
from helpers.stack.queues.vtasks_worker import VtasksWorker

TABLE = "db_queuedtask"  # django_vtasks.db's app label is "db"


@register
class VtasksPostgres(postgres_server.UsesPostgres, VtasksWorker):
    """A task is a row: QUEUED, PROCESSING once a worker claims it, deleted once run (so no result is kept), FAILED
    when it raised."""

    name = "vtasks_postgres"
    label = "django-vtasks, PostgreSQL"
    enqueue_in_transaction = True  # the task row is written over the site's own database connection

    def _count(self, conn, where: str, *params) -> int:
        return conn.execute(f"select count(*) from {TABLE} where {where}", params).fetchone()[0]

    def read_depth(self, conn) -> int:
        return self._count(conn, "status = 'QUEUED' and (run_after is null or run_after <= %s)", datetime.now(UTC))

    def read_scheduled(self, conn) -> int:
        return self._count(conn, "status = 'QUEUED' and run_after > %s", datetime.now(UTC))

    def counts(self) -> dict[str, int | None]:
        with self.connection() as conn:
            return {"pending": self.read_depth(conn), "scheduled": self.read_scheduled(conn),
                    "running": self._count(conn, "status = 'PROCESSING'")}
