"""django-vtasks' Valkey backend through Django's Tasks API: the lab's own redis-server (helpers.stack.redis_server;
Valkey speaks the same protocol, django-vtasks' Rust driver talks to either); an idle worker waits in a blocking move
(BLMOVE) off the queue's list."""

from __future__ import annotations

import signal
import sys

from helpers.stack import redis_server
from helpers.stack.queues import QueueBackend, register

# django-vtasks' keys (VTASKS_VALKEY_PREFIX "{vt}", a colon added): a queue's list, each worker's processing list (the
# tasks it has taken and not finished), delayed tasks in a sorted set, and the dead-letter list.
PREFIX = "{vt}:"
QUEUE_KEY = f"{PREFIX}q:default"
SCHEDULED_KEY = f"{PREFIX}sched:default"
PROCESSING_PATTERN = f"{PREFIX}processing:*"


@register
class VtasksValkey(redis_server.UsesRedis, QueueBackend):
    """A worker moves the task it takes into its processing list and removes it once run. With the default
    VTASKS_MAX_RESCUES (0), a worker that finds a dead sibling's processing list sends those tasks to the dead-letter
    list, never runs them again: at-most-once."""

    name = "vtasks_valkey"
    label = "django-vtasks, Valkey protocol (redis-server)"
    delivery = "at-most-once"
    blocking_pickup = True
    worker_ready_line = "Starting worker with concurrency="
    worker_stop_signal = signal.SIGTERM  # the worker stops taking tasks and waits for the running ones
    queue_key = QUEUE_KEY
    schedule_key = SCHEDULED_KEY
    in_matrix = False

    def worker_argv(self) -> list[str]:
        """One asyncio worker process running up to consumer_workers tasks at once (a sync task in a thread)."""
        return [sys.executable, "-m", "django", "runworker", "--concurrency", str(self.lab.config.consumer_workers)]

    def counts(self) -> dict[str, int | None]:
        """Running: the tasks in the workers' processing lists (a killed worker's stay there until a worker of the
        same host finds them)."""
        with self.connection() as conn:
            running = sum(int(conn.llen(key)) for key in conn.scan_iter(match=PROCESSING_PATTERN))
            return {"pending": int(conn.llen(QUEUE_KEY)), "scheduled": int(conn.zcard(SCHEDULED_KEY)),
                    "running": running}
