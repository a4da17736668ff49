"""Celery on Redis with its default settings, the seed article's code as written (`@shared_task`, `.delay`): the
lab's own redis-server (helpers.stack.redis_server); an idle worker waits in a blocking pop (BRPOP)."""

from __future__ import annotations

import signal
import sys

from helpers.stack import redis_server
from helpers.stack.queues import QueueBackend, register

# Kombu's Redis transport keeps the default queue in one list, named after it ("celery"; tasks sent with a priority
# go to sibling lists). A worker takes more than it runs (prefetch: 4 per pool process by default); a task taken
# and not yet acknowledged sits in the "unacked" hash, with its time in the "unacked_index" sorted set.
QUEUE_KEY = "celery"
UNACKED_KEY = "unacked"


@register
class CeleryRedis(redis_server.UsesRedis, QueueBackend):
    """By default a worker acknowledges a task just before running it (Celery's docs: a task that has started is
    not run again if its worker dies): a worker killed mid-task loses it, at-most-once. Tasks it had prefetched but
    not started are still unacknowledged and come back after the transport's visibility timeout (an hour)."""

    name = "celery_redis"
    label = "Celery, Redis"
    delivery = "at-most-once"
    blocking_pickup = True
    worker_ready_line = " ready."  # "celery@<host> ready." once the consumer takes tasks
    worker_stop_signal = signal.SIGTERM  # warm shutdown: running tasks finish
    queue_key = QUEUE_KEY  # ETA tasks wait in the worker's memory, not in Redis: nothing to count as scheduled

    def worker_argv(self) -> list[str]:
        """The prefork pool of consumer_workers processes under one main process; a node name of its own for
        each worker process the lab starts (`%h`: the host)."""
        c = self.lab.config
        self._workers_started = getattr(self, "_workers_started", 0) + 1
        return [sys.executable, "-m", "celery", "-A", "labsite", "worker", "--pool", "prefork",
                "--concurrency", str(c.consumer_workers), "--loglevel", "INFO",
                "--hostname", f"lab{self._workers_started}@%h"]

    def counts(self) -> dict[str, int | None]:
        """Waiting in the list; `unacked`: taken by a worker and not acknowledged (prefetched, or running with
        acks_late), which Redis hands out again after the visibility timeout."""
        with self.connection() as conn:
            return {"pending": int(conn.llen(QUEUE_KEY)), "scheduled": 0, "running": None,
                    "unacked": int(conn.hlen(UNACKED_KEY))}
