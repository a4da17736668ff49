"""The Huey classes settings.HUEY names as its "huey_class" (one per entry of settings.QUEUE_BACKENDS).

Named for that setting, not `queue`: a module called queue.py shadows the standard library's wherever its folder
is on sys.path.

On SQLite, the durability level is chosen per run. Huey's own SqliteStorage offers fsync on (synchronous=FULL, an
fsync per enqueue) or off. In WAL mode SQLite's `synchronous=NORMAL` is the usual middle: a committed task
survives the process crashing, and only an OS crash or power cut can lose the last commits. It makes an enqueue
about five times cheaper than FULL on this machine (see `python -m helpers bench queue`), so it is the lab's
default; LAB_HUEY_SYNC switches to "full" or "off" to show the trade-off.

Huey keeps a task's result until someone reads it without `peek`, and the status endpoint only peeks: on every
backend the consumer prunes what it stored (PrunesResults).
"""

import time

from django.conf import settings
from huey import PostgresHuey, RedisHuey, SqliteHuey
from huey.consumer import Consumer, Scheduler
from huey.storage import SqliteStorage

RUNNING_KEY = "running:{}"  # the marker labsite.tasks leaves as a task starts: its value is the start time

SYNCHRONOUS_LEVELS = {"off": 0, "normal": 1, "full": 2}


class TunableSqliteStorage(SqliteStorage):
    def __init__(self, *args, synchronous: str = "normal", **kwargs):
        if synchronous not in SYNCHRONOUS_LEVELS:
            raise ValueError(f"synchronous must be one of {sorted(SYNCHRONOUS_LEVELS)}, not {synchronous!r}")
        self._synchronous = SYNCHRONOUS_LEVELS[synchronous]
        super().__init__(*args, **kwargs)

    def _create_connection(self):
        conn = super()._create_connection()
        conn.execute(f"pragma synchronous={self._synchronous}")
        return conn


# Huey signals enqueue (in the enqueuing process), executing and complete/error (in the consumer), but not the
# moment a worker takes a task off the queue. SqliteStorage.dequeue deletes the row in the same transaction
# that reads it, so that moment is "pickup": from then on the task lives only in that worker's memory (a crash
# loses it) and its queue wait is over. Between pickup and "executing" Huey unpickles the task and checks
# revocation, expiry and pre-execute hooks.
SIGNAL_DEQUEUED = "dequeued"


class SignalsDequeued:
    """Mixed into a Huey class: its dequeue also emits `dequeued`. On Redis, too, the pop (BRPOP) removes the
    task from the list as it returns it, so the moment means the same on both backends."""

    def dequeue(self):
        """Huey's dequeue, plus a `dequeued` signal that any receiver (Huey's stats recorder) can record."""
        task = super().dequeue()
        if task is not None:
            self._emit(SIGNAL_DEQUEUED, task)
        return task


def prune_results(huey, ttl_s: float, now: float | None = None) -> int:
    """Delete the `running:` marker and the result of every task that started more than `ttl_s` ago; returns how
    many tasks. Every task the consumer runs gets a marker (labsite.tasks.mark_running) before its result, so the
    marker dates the result; a task still running after `ttl_s` loses its result too."""
    cutoff = (time.time() if now is None else now) - ttl_s
    prefix = RUNNING_KEY.format("")
    pruned = 0
    for key, raw in huey.storage.result_items().items():
        if key.startswith(prefix) and huey.serializer.deserialize(raw) < cutoff:
            huey.storage.delete_data(key[len(prefix):])
            huey.storage.delete_data(key)
            pruned += 1
    return pruned


class PruningScheduler(Scheduler):
    """Huey's scheduler (one thread of the consumer, awake every second), which also prunes results older than
    LAB_HUEY_RESULT_TTL_S, every tenth of that (at least every second, at most every minute): off the workers'
    threads, so no task waits for it."""

    def loop(self, now=None):
        super().loop(now)
        ttl_s = settings.LAB_HUEY_RESULT_TTL_S
        if time.monotonic() >= getattr(self, "_next_prune", 0.0):
            self._next_prune = time.monotonic() + min(max(ttl_s / 10, 1.0), 60.0)
            try:
                if pruned := prune_results(self.huey, ttl_s):
                    self._logger.info("pruned the results of %s tasks older than %s s", pruned, ttl_s)
            except Exception:
                self._logger.exception("pruning results failed; the next pass tries again")


class PruningConsumer(Consumer):
    scheduler_class = PruningScheduler


class PrunesResults:
    """Mixed into a Huey class: its consumer prunes old results (PruningScheduler)."""

    def create_consumer(self, **options):
        return PruningConsumer(self, **options)


class LabSqliteHuey(PrunesResults, SignalsDequeued, SqliteHuey):
    """Huey on SQLite (LAB_QUEUE_BACKEND=huey_sqlite), with the `synchronous` option from HUEY."""

    storage_class = TunableSqliteStorage


class LabRedisHuey(PrunesResults, SignalsDequeued, RedisHuey):
    """Huey on Redis (LAB_QUEUE_BACKEND=huey_redis): storage options (url, blocking, read_timeout) from HUEY."""


class LabPostgresHuey(PrunesResults, SignalsDequeued, PostgresHuey):
    """Huey on PostgreSQL (LAB_QUEUE_BACKEND=huey_postgres): its dequeue deletes the row (`delete ... returning`,
    `for update skip locked`) as it returns the task, so `dequeued` means what it means on SQLite and Redis.
    Storage options (dsn, blocking, read_timeout) from HUEY."""
