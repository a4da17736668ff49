"""django-vtasks' Valkey backend through Django's Tasks API: the lab's own redis-server (helpers.stack.redis_server;
Valkey speaks the same protocol, django-vtasks' Rust driver talks to either); an idle worker waits in a blocking move
(BLMOVE) off the queue's list."""

from __future__ import annotations

from helpers.stack import redis_server
from helpers.stack.queues import register
from helpers.stack.queues.vtasks_worker import VtasksWorker

# django-vtasks' keys (VTASKS_VALKEY_PREFIX "{vt}", a colon added): a queue's list, each worker's processing list (the
# tasks it has taken and not finished), delayed tasks in a sorted set, and the dead-letter list.
PREFIX = "{vt}:"
QUEUE_KEY = f"{PREFIX}q:default"
SCHEDULED_KEY = f"{PREFIX}sched:default"
PROCESSING_PATTERN = f"{PREFIX}processing:*"


@register
class VtasksValkey(redis_server.UsesRedis, VtasksWorker):
    """A worker moves the task it takes into its processing list (BLMOVE) and removes it once run; a dead worker's
    list is what the rescue finds."""

    name = "vtasks_valkey"
    label = "django-vtasks, Valkey protocol (redis-server)"
    blocking_pickup = True
    queue_key = QUEUE_KEY
    schedule_key = SCHEDULED_KEY

    def counts(self) -> dict[str, int | None]:
        """Running: the tasks in the workers' processing lists (a killed worker's stay there until a worker of the
        same host finds them)."""
        with self.connection() as conn:
            running = sum(int(conn.llen(key)) for key in conn.scan_iter(match=PROCESSING_PATTERN))
            return {"pending": int(conn.llen(QUEUE_KEY)), "scheduled": int(conn.zcard(SCHEDULED_KEY)),
                    "running": running}
