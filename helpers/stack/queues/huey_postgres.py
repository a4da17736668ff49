"""Huey on PostgreSQL (PostgresHuey): the lab's own server (helpers.stack.postgres_server); an enqueue inserts a
row and sends NOTIFY, an idle worker waits on LISTEN for it instead of polling."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from helpers.stack import postgres_server
from helpers.stack.queues import register
from helpers.stack.queues.huey_consumer import BlockingHueyConsumer

# Huey's PostgresStorage keeps the queue in huey_task and its scheduled tasks in huey_schedule, a `queue` column
# telling the queues apart (settings.HUEY["name"]). Its dequeue deletes the row it returns: at-most-once, as on
# SQLite and Redis.
QUEUE_NAME = "labsite"


@register
class HueyPostgres(postgres_server.UsesPostgres, BlockingHueyConsumer):
    name = "huey_postgres"
    label = "Huey, PostgreSQL"
    read_timeout_variable = "LAB_PG_READ_TIMEOUT"

    @contextlib.contextmanager
    def depth_reader(self) -> Iterator[Callable[[], int]]:
        with self.postgres.connect() as conn:
            yield lambda: conn.execute("select count(*) from huey_task where queue = %s", (QUEUE_NAME,)).fetchone()[0]

    def scheduled(self) -> int:
        with self.postgres.connect() as conn:
            return conn.execute("select count(*) from huey_schedule where queue = %s", (QUEUE_NAME,)).fetchone()[0]
