"""Huey on PostgreSQL (PostgresHuey): the lab's own server (helpers.stack.postgres_server); an enqueue inserts a
row and sends NOTIFY, an idle worker waits on LISTEN for it instead of polling."""

from __future__ import annotations

from helpers.stack import postgres_server
from helpers.stack.queues import register
from helpers.stack.queues.huey_consumer import HUEY_NAME, BlockingHueyConsumer


@register
class HueyPostgres(postgres_server.UsesPostgres, BlockingHueyConsumer):
    """Huey's PostgresStorage keeps the queue in huey_task and its scheduled tasks in huey_schedule, a `queue`
    column telling the queues apart. Its dequeue deletes the row it returns: at-most-once, as on SQLite and Redis."""

    name = "huey_postgres"
    label = "Huey, PostgreSQL"
    read_timeout_variable = "LAB_PG_READ_TIMEOUT"

    def read_depth(self, conn) -> int:
        return conn.execute("select count(*) from huey_task where queue = %s", (HUEY_NAME,)).fetchone()[0]

    def read_scheduled(self, conn) -> int:
        return conn.execute("select count(*) from huey_schedule where queue = %s", (HUEY_NAME,)).fetchone()[0]
