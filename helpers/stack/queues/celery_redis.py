"""Celery on Redis with its default settings, the seed article's code as written (`@shared_task`, `.delay`): the
lab's own redis-server (helpers.stack.redis_server); an idle worker waits in a blocking pop (BRPOP)."""

from __future__ import annotations

from helpers.stack import redis_server
from helpers.stack.queues import register
from helpers.stack.queues.celery_worker import QUEUE, CeleryWorker

# Kombu's Redis transport keeps the default queue in one list, named after it ("celery"; tasks sent with a priority
# go to sibling lists). A worker takes more than it runs (prefetch: 4 per pool process by default); a task taken
# and not yet acknowledged sits in the "unacked" hash, with its time in the "unacked_index" sorted set.
QUEUE_KEY = QUEUE
UNACKED_KEY = "unacked"


@register
class CeleryRedis(redis_server.UsesRedis, CeleryWorker):
    """By default a worker acknowledges a task just before running it (Celery's docs: a task that has started is
    not run again if its worker dies): a worker killed mid-task loses it, at-most-once. Tasks it had prefetched but
    not started are still unacknowledged and come back after the transport's visibility timeout (an hour)."""

    name = "celery_redis"
    label = "Celery, Redis"
    delivery = "at-most-once"
    queue_key = QUEUE_KEY  # ETA tasks wait in the worker's memory, not in Redis: nothing to count as scheduled

    def counts(self) -> dict[str, int | None]:
        """Waiting in the list; `unacked`: taken by a worker and not acknowledged (prefetched, or running with
        acks_late), which Redis hands out again after the visibility timeout."""
        with self.connection() as conn:
            return {"pending": int(conn.llen(QUEUE_KEY)), "scheduled": 0, "running": None,
                    "unacked": int(conn.hlen(UNACKED_KEY))}
