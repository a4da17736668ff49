"""Huey on SQLite: one file in the run folder, no server; idle workers poll it with back-off."""

from __future__ import annotations

import contextlib
import sqlite3

from helpers.stack.queues import register
from helpers.stack.queues.huey_consumer import HueyConsumer


def read_only(path) -> sqlite3.Connection:
    """A read-only connection: in WAL mode a reader never blocks the consumer or an enqueuer."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)


@register
class HueySqlite(HueyConsumer):
    name = "huey_sqlite"
    label = "Huey, SQLite"

    @property
    def file(self):
        return self.lab.run_dir / "huey.sqlite3"

    def site_env(self) -> dict[str, str]:
        return {**super().site_env(), "LAB_HUEY_FILE": str(self.file)}

    def connection(self):
        return contextlib.closing(read_only(self.file))

    def read_depth(self, conn) -> int:
        return conn.execute("select count(*) from task").fetchone()[0]

    def read_scheduled(self, conn) -> int:
        return conn.execute("select count(*) from schedule").fetchone()[0]

    @property
    def location(self) -> str:
        return str(self.file)
