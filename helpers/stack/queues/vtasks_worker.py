"""What both django-vtasks backends share: its asyncio worker (`manage.py runworker`) and how it says it is ready."""

from __future__ import annotations

import signal
import sys

from helpers.stack.queues import QueueBackend


class VtasksWorker(QueueBackend):
    """django-vtasks' worker: one asyncio process, a sync task run in a thread. A dead worker's tasks are found by a
    worker of the same host (at its start, then every 30 s once its liveness marker has expired) and, with the default
    VTASKS_MAX_RESCUES (0), sent to the dead-letter list or marked failed, never run again: at-most-once."""

    # No production twin: django-vtasks' README recommends no recovery setting. VTASKS_MAX_RESCUES (and a task's
    # max_rescues) exists in its settings, default 0, with no guidance; its tracker calls failure handling
    # undesigned (no retries at all; rescue only by a worker of the same host: gitlab.com/glitchtip/django-vtasks
    # issue 11) and reports 3.x's periodic sweep dead-lettering tasks still running (issue 10).
    delivery = "at-most-once"
    enqueue_on_commit = True  # django_vtasks.tasks: on_commit=True by default (measured: 0 of 3 ran after a rollback)
    worker_ready_line = "Starting worker with concurrency="
    worker_stop_signal = signal.SIGTERM  # the worker stops taking tasks and waits for the running ones
    in_matrix = False

    def worker_argv(self) -> list[str]:
        """One worker process running up to consumer_workers tasks at once."""
        return [sys.executable, "-m", "django", "runworker", "--concurrency", str(self.lab.config.consumer_workers)]
