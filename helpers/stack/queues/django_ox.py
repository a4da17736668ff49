"""django-ox through Django's Tasks API, on the run's PostgreSQL server (helpers.stack.postgres_server), which is
Django's database too: an enqueue is one INSERT in the request's transaction; `manage.py ox_worker` polls the table
and claims with SELECT ... FOR UPDATE SKIP LOCKED."""

from __future__ import annotations

import signal
import sys

from helpers.stack import postgres_server
from helpers.stack.queues import register
from helpers.stack.queues.job_table import JobTable


@register
class DjangoOx(postgres_server.UsesPostgres, JobTable):
    """A task is a row: READY, RUNNING under a worker's lease (renewed while it runs), then SUCCESSFUL or FAILED. A
    reaper in every worker hands a RUNNING task whose lease has not been renewed for LOCK_TIMEOUT (300 s by default)
    back to the queue, within its attempt budget (MAX_ATTEMPTS 3): at-least-once. A failing task is retried with
    exponential backoff (5 s, doubling) up to that budget. The worker polls: on an empty queue it sleeps --interval s
    (1 s by default)."""

    name = "django_ox"
    label = "django-ox, PostgreSQL"
    delivery = "at-least-once"
    worker_ready_line = " starting: queues="  # "Worker <id> starting: queues=... concurrency=... poll=..."
    worker_stop_signal = signal.SIGTERM  # it stops claiming and drains the tasks in flight
    tuned_worker_config = {"poll_interval_s": 0.02}  # --interval: look every 20 ms instead of every second
    redelivery_after_s = 300.0  # LOCK_TIMEOUT: a dead worker's lease must go that long unrenewed
    enqueue_in_transaction = True  # the task row is written over the site's own database connection
    in_matrix = False
    table, waiting_status, running_status, due_column = "django_ox_oxtask", "READY", "RUNNING", "run_after"

    def worker_argv(self) -> list[str]:
        """One worker process running up to consumer_workers tasks at once (its thread pool)."""
        c = self.lab.config
        argv = [sys.executable, "-m", "django", "ox_worker", "--concurrency", str(c.consumer_workers)]
        if c.poll_interval_s is not None:
            argv += ["--interval", str(c.poll_interval_s)]
        return argv
