"""Huey on Redis: the lab's own redis-server (helpers.stack.redis_server); idle workers wait in a blocking pop."""

from __future__ import annotations

from helpers.stack import redis_server
from helpers.stack.queues import register
from helpers.stack.queues.huey_consumer import BlockingHueyConsumer

# Huey's Redis storage keeps the queue in one list, huey.redis.<name> (settings.HUEY["name"]), and its
# scheduled tasks in a sorted set, huey.schedule.<name>.
QUEUE_KEY = "huey.redis.labsite"
SCHEDULE_KEY = "huey.schedule.labsite"


@register
class HueyRedis(redis_server.UsesRedis, BlockingHueyConsumer):
    name = "huey_redis"
    label = "Huey, Redis"
    read_timeout_variable = "LAB_REDIS_READ_TIMEOUT"
    queue_key = QUEUE_KEY
    schedule_key = SCHEDULE_KEY
