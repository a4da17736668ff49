"""procrastinate through its Django app, on the run's PostgreSQL server (helpers.stack.postgres_server), Django's
database too: a defer inserts a job row in the request's transaction, the jobs table's trigger sends NOTIFY once it
commits, and an idle worker waits on LISTEN for it (polling every 5 s as a fallback)."""

from __future__ import annotations

import signal
import sys

from helpers.stack import postgres_server
from helpers.stack.queues import register
from helpers.stack.queues.job_table import JobTable


@register
class ProcrastinatePostgres(postgres_server.UsesPostgres, JobTable):
    """A job is a row: todo, doing once a worker fetches it (in one statement, SKIP LOCKED), then succeeded or failed.
    Nothing hands a killed worker's job back by itself: it stays "doing" until someone retries stalled jobs
    (procrastinate's documented recipe), so with the defaults it never runs again: at-most-once."""

    name = "procrastinate_postgres"
    label = "procrastinate, PostgreSQL"
    delivery = "at-most-once"
    blocking_pickup = True  # LISTEN/NOTIFY
    worker_ready_line = "Starting worker on"
    worker_stop_signal = signal.SIGTERM  # it stops fetching and waits for the running jobs
    enqueue_in_transaction = True  # the job row is written over the site's own database connection
    in_matrix = False
    table, waiting_status, running_status, due_column = "procrastinate_jobs", "todo", "doing", "scheduled_at"

    def _count(self, conn, where: str, *params) -> int:
        """In the site's queue ("default"): a periodic maintenance task's jobs (the production twin's) are not the
        site's tasks."""
        return super()._count(conn, f"queue_name = 'default' and ({where})", *params)

    def worker_argv(self) -> list[str]:
        """One worker process running up to consumer_workers jobs at once (sync jobs in threads)."""
        return [sys.executable, "-m", "django", "procrastinate", "worker",
                "--concurrency", str(self.lab.config.consumer_workers)]
