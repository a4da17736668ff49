"""Huey on Redis: the lab's own redis-server (helpers.stack.redis_server); idle workers wait in a blocking pop."""

from __future__ import annotations

from helpers.stack import redis_server
from helpers.stack.queues import register
from helpers.stack.queues.huey_consumer import HUEY_NAME, BlockingHueyConsumer


@register
class HueyRedis(redis_server.UsesRedis, BlockingHueyConsumer):
    """Huey's Redis storage keeps the queue in one list and its scheduled tasks in a sorted set."""

    name = "huey_redis"
    label = "Huey, Redis"
    read_timeout_variable = "LAB_REDIS_READ_TIMEOUT"
    queue_key = f"huey.redis.{HUEY_NAME}"
    schedule_key = f"huey.schedule.{HUEY_NAME}"


QUEUE_KEY = HueyRedis.queue_key
