"""Huey on SQLite, with the durability level chosen per run.

Huey's own SqliteStorage offers fsync on (synchronous=FULL, an fsync per enqueue) or off. In WAL mode
SQLite's `synchronous=NORMAL` is the usual middle: a committed task survives the process crashing, and
only an OS crash or power cut can lose the last commits. It makes an enqueue about five times cheaper than
FULL on this machine (see `python -m helpers bench queue`), so it is the lab's default; LAB_HUEY_SYNC
switches to "full" or "off" to show the trade-off.
"""

from huey import SqliteHuey
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


class LabSqliteHuey(SqliteHuey):
    storage_class = TunableSqliteStorage
