"""What both django-tasks-db backends share (Django's Tasks API on the site's own database): the worker
(`manage.py db_worker`), its polling interval, and how the task table counts what waits, runs and is scheduled."""

from __future__ import annotations

import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

from helpers.stack.queues import QueueBackend

TABLE = "django_tasks_database_dbtaskresult"  # the app label is django_tasks_database
# A task without run_after is stored with this one (django_tasks_db.models.get_date_max): "as soon as possible".
NO_RUN_AFTER = datetime(9999, 1, 1, tzinfo=UTC)
POOL = Path(__file__).resolve().parent.parent / "worker_pool.py"


class TasksDbWorker(QueueBackend):
    """A task is a row: READY, then RUNNING once a worker claims it (in the transaction that selects it, `for
    update skip locked`), then SUCCESSFUL or FAILED. Nothing gives a claimed task back: a worker killed mid-task
    leaves its row RUNNING for good (django-tasks issue 46), so the task never runs again: at-most-once. The
    worker polls: on an empty queue it sleeps --interval s (1 s by default) before it looks again."""

    # No production twin: django-tasks-db has no setting that recovers a dead worker's task (no lease, heartbeat or
    # reaper; db_worker's options are its interval, queues and startup delay), and its docs recommend none: the RUNNING
    # row stays until someone resets it by hand (django-tasks issue 46).
    delivery = "at-most-once"
    worker_ready_line = "Starting worker worker_id="
    worker_stop_signal = signal.SIGTERM  # the running task finishes, then the worker exits
    tuned_worker_config = {"poll_interval_s": 0.02}  # --interval: look every 20 ms instead of every second
    enqueue_in_transaction = True  # the task row is written over the site's own database connection

    def worker_argv(self) -> list[str]:
        """db_worker runs one task at a time: consumer_workers of them run side by side under one pool process."""
        c = self.lab.config
        argv = [sys.executable, "-m", "django", "db_worker", "--no-startup-delay", "--no-reload"]
        if c.poll_interval_s is not None:
            argv += ["--interval", str(c.poll_interval_s)]
        if c.consumer_workers == 1:
            return argv
        return [sys.executable, str(POOL), str(c.consumer_workers), "--", *argv]

    # -- the task table, in the site's own database (site_database) ---------------------------------------------

    def connection(self):
        return self.site_database().connect()

    def _count(self, conn, where: str, *moments: datetime) -> int:
        database = self.site_database()
        sql = f"select count(*) from {TABLE} where {where}".replace("?", database.placeholder)
        return conn.execute(sql, [database.moment(m) for m in moments]).fetchone()[0]

    @property
    def location(self) -> str:
        return self.site_database().location

    def read_depth(self, conn) -> int:
        """What the worker's ready() takes: READY, and due (no run_after, or one in the past)."""
        return self._count(conn, "status = 'READY' and (run_after <= ? or run_after >= ?)", datetime.now(UTC),
                           NO_RUN_AFTER)

    def read_scheduled(self, conn) -> int:
        return self._count(conn, "status = 'READY' and run_after > ? and run_after < ?", datetime.now(UTC),
                           NO_RUN_AFTER)

    def counts(self) -> dict[str, int | None]:
        """The database knows the running tasks too (and keeps those a killed worker left RUNNING)."""
        with self.connection() as conn:
            return {"pending": self.read_depth(conn), "scheduled": self.read_scheduled(conn),
                    "running": self._count(conn, "status = 'RUNNING'")}
