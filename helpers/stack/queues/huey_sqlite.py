"""Huey on SQLite: one file in the run folder, no server; idle workers poll it with back-off."""

from __future__ import annotations

import contextlib

from helpers.stack.queues import register
from helpers.stack.queues.huey_consumer import HueyConsumer
from helpers.stack.site_database import sqlite_read_only


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
        return contextlib.closing(sqlite_read_only(self.file))

    def read_depth(self, conn) -> int:
        return conn.execute("select count(*) from task").fetchone()[0]

    def read_scheduled(self, conn) -> int:
        return conn.execute("select count(*) from schedule").fetchone()[0]

    @property
    def location(self) -> str:
        return str(self.file)
