"""What the Celery backends share, whatever their broker: the worker (`celery -A labsite worker`, prefork) and how
it says it is ready and stops."""

from __future__ import annotations

import signal
import sys

from helpers.stack.queues import QueueBackend

QUEUE = "celery"  # Celery's default queue (task_default_queue), named the same on every broker


class CeleryWorker(QueueBackend):
    """Celery's worker: a main process and its pool (prefork unless the lab's config chooses another)."""

    blocking_pickup = True  # the broker pushes (AMQP) or the worker waits in a blocking pop (Redis)
    worker_ready_line = " ready."  # "celery@<host> ready." once the consumer takes tasks
    worker_stop_signal = signal.SIGTERM  # warm shutdown: running tasks finish

    def worker_argv(self) -> list[str]:
        """A pool of consumer_workers (LabConfig.celery_pool: processes by default, or threads) under one main
        process; a node name of its own for each worker process the lab starts (`%h`: the host)."""
        c = self.lab.config
        self._workers_started = getattr(self, "_workers_started", 0) + 1
        return [sys.executable, "-m", "celery", "-A", "labsite", "worker", "--pool", c.celery_pool,
                "--concurrency", str(c.consumer_workers), "--loglevel", "INFO",
                "--hostname", f"lab{self._workers_started}@%h"]
