"""The Huey classes settings.HUEY names as its "huey_class" (one per entry of settings.QUEUE_BACKENDS).

Named for that setting, not `queue`: a module called queue.py shadows the standard library's wherever its folder
is on sys.path.

On SQLite, the durability level is chosen per run. Huey's own SqliteStorage offers fsync on (synchronous=FULL, an
fsync per enqueue) or off. In WAL mode SQLite's `synchronous=NORMAL` is the usual middle: a committed task
survives the process crashing, and only an OS crash or power cut can lose the last commits. It makes an enqueue
about five times cheaper than FULL on this machine (see `python -m helpers bench queue`), so it is the lab's
default; LAB_HUEY_SYNC switches to "full" or "off" to show the trade-off.
"""

from huey import PostgresHuey, RedisHuey, SqliteHuey
from huey.storage import SqliteStorage

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


class LabSqliteHuey(SignalsDequeued, SqliteHuey):
    """Huey on SQLite (LAB_QUEUE_BACKEND=huey_sqlite), with the `synchronous` option from HUEY."""

    storage_class = TunableSqliteStorage


class LabRedisHuey(SignalsDequeued, RedisHuey):
    """Huey on Redis (LAB_QUEUE_BACKEND=huey_redis): storage options (url, blocking, read_timeout) from HUEY."""


class LabPostgresHuey(SignalsDequeued, PostgresHuey):
    """Huey on PostgreSQL (LAB_QUEUE_BACKEND=huey_postgres): its dequeue deletes the row (`delete ... returning`,
    `for update skip locked`) as it returns the task, so `dequeued` means what it means on SQLite and Redis.
    Storage options (dsn, blocking, read_timeout) from HUEY."""
