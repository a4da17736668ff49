"""threadmill 0.3.1's Redis backend through Django's Tasks API: the lab's own redis-server
(helpers.stack.redis_server); an idle worker polls the queue's sorted set (a Lua script per look)."""

from __future__ import annotations

import signal
import sys

from helpers.stack import redis_server
from helpers.stack.queues import QueueBackend, register

# threadmill's keys for the backend alias "default" (a Redis Cluster hash tag): READY tasks in a sorted set scored by
# priority and time, tasks held for later in another, running tasks in a third.
PREFIX = "threadmill:{default}"
QUEUE_KEY = f"{PREFIX}:queue:default"
DEFERRED_KEY = f"{PREFIX}:deferred:default"
RUNNING_KEY = f"{PREFIX}:running:default"


@register
class ThreadmillRedis(redis_server.UsesRedis, QueueBackend):
    """A worker moves the task it takes into the running set and acknowledges it once run. A task whose worker
    died stays there until its lease (an hour by default) runs out; the broker then marks it FAILED
    (AcknowledgementTimeout) and does not run it again: at-most-once."""

    name = "threadmill_redis"
    label = "threadmill, Redis"
    delivery = "at-most-once"
    worker_ready_line = "Starting worker process"  # each worker process logs it (multiprocessing's logger)
    worker_stop_signal = signal.SIGTERM  # workers finish the tasks they acquired
    queue_key = QUEUE_KEY
    schedule_key = DEFERRED_KEY
    in_matrix = False

    def worker_argv(self) -> list[str]:
        """threadmill's pool: consumer_workers threads in one process, or (worker type "process") that many
        processes of one thread each."""
        c = self.lab.config
        processes, threads = ((c.consumer_workers, 1) if c.consumer_worker_type == "process"
                              else (1, c.consumer_workers))
        return [sys.executable, "-m", "django", "threadmill", "worker", "--workers", str(processes),
                "--threads", str(threads)]

    def read_depth(self, conn) -> int:
        return int(conn.zcard(QUEUE_KEY))

    def counts(self) -> dict[str, int | None]:
        with self.connection() as conn:
            return {"pending": int(conn.zcard(QUEUE_KEY)), "scheduled": int(conn.zcard(DEFERRED_KEY)),
                    "running": int(conn.zcard(RUNNING_KEY))}
