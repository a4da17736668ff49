"""What the backends whose queue is a table of the run's PostgreSQL share (django-ox, django-vtasks' database
backend, procrastinate): how the table counts what waits, what waits for later and what runs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

from helpers.stack.queues import QueueBackend


class JobTable(QueueBackend):
    """A task is a row of `table`: `waiting_status` until a worker claims it, `running_status` while it runs; a row
    whose `due_column` is set and still ahead waits for later (a retry's backoff, a deferred task)."""

    table: ClassVar[str]
    waiting_status: ClassVar[str]
    running_status: ClassVar[str]
    due_column: ClassVar[str]

    def _count(self, conn, where: str, *params) -> int:
        return conn.execute(f"select count(*) from {self.table} where {where}", params).fetchone()[0]

    def read_depth(self, conn) -> int:
        """What a worker may claim now: waiting, and due (no due time, or one past)."""
        return self._count(conn, f"status = %s and ({self.due_column} is null or {self.due_column} <= %s)",
                           self.waiting_status, datetime.now(UTC))

    def read_scheduled(self, conn) -> int:
        return self._count(conn, f"status = %s and {self.due_column} > %s", self.waiting_status, datetime.now(UTC))

    def counts(self) -> dict[str, int | None]:
        """The table knows the running tasks too (and keeps those a killed worker left running)."""
        with self.connection() as conn:
            return {"pending": self.read_depth(conn), "scheduled": self.read_scheduled(conn),
                    "running": self._count(conn, "status = %s", self.running_status)}
