"""Huey on Redis: the lab's own redis-server (helpers.stack.redis_server); idle workers wait in a blocking pop."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from helpers.stack import redis_server
from helpers.stack.queues import register
from helpers.stack.queues.huey_consumer import HueyConsumer

# Huey's Redis storage keeps the queue in one list, huey.redis.<name> (settings.HUEY["name"]), and its
# scheduled tasks in a sorted set, huey.schedule.<name>.
QUEUE_KEY = "huey.redis.labsite"
SCHEDULE_KEY = "huey.schedule.labsite"


@register
class HueyRedis(redis_server.UsesRedis, HueyConsumer):
    name = "huey_redis"
    label = "Huey, Redis"
    blocking_pickup = True

    def site_env(self) -> dict[str, str]:
        return {**super().site_env(), "LAB_REDIS_URL": self.redis.url,
                "LAB_REDIS_READ_TIMEOUT": str(self.lab.config.redis_read_timeout_s)}

    @contextlib.contextmanager
    def depth_reader(self) -> Iterator[Callable[[], int]]:
        with self.redis.client() as conn:
            yield lambda: int(conn.llen(QUEUE_KEY))

    def scheduled(self) -> int:
        with self.redis.client() as conn:
            return int(conn.zcard(SCHEDULE_KEY))
