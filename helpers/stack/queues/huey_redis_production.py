"""Huey on Redis with the setting Huey's docs give for a task that must not be lost to a failure (the same server and
consumer as huey_redis, other settings):

- `retries` and `retry_delay` on every task: a task that raised is enqueued again, `retry_delay` s later, while it
  has retries left ("Retrying tasks that fail", https://huey.readthedocs.io/en/latest/guide.html#retrying-tasks-that-fail;
  the Django integration passes them through its task decorators,
  https://huey.readthedocs.io/en/latest/django.html).

Nothing else applies to a dead consumer: Huey removes a task from Redis as a worker takes it and acknowledges nothing,
so a consumer SIGKILLed mid-task still loses it (its docs' graceful shutdown, SIGINT, which the lab already sends,
https://huey.readthedocs.io/en/latest/consumer.html#consumer-shutdown, only helps a consumer asked to stop). This twin
measures what retries buy (a failing SMTP server), not a recovery.
"""

from __future__ import annotations

from helpers.stack.queues import register
from helpers.stack.queues.huey_redis import HueyRedis

GUIDE = "https://huey.readthedocs.io/en/latest/guide.html#retrying-tasks-that-fail"


@register
class HueyRedisProduction(HueyRedis):
    """A task that raised runs again after RETRY_DELAY_S, up to RETRIES times; a task whose consumer is killed is
    lost, as on huey_redis: at-most-once."""

    name = "huey_redis_production"
    label = "Huey, Redis, production settings"
    delivery = "at-most-once"
    redelivery_after_s = None  # Huey never hands a killed consumer's task back
    in_matrix = False  # notebook 07 measures huey_redis alone
    setting, production_of = "production", HueyRedis.name
    retries, retry_delay_s = 3, 1.0
    recommended_by = (
        (f"@task(retries={retries}, retry_delay={retry_delay_s:g}) on every task", GUIDE),
        ("nothing for a killed consumer: Huey acknowledges nothing (graceful shutdown is SIGINT)",
         "https://huey.readthedocs.io/en/latest/consumer.html#consumer-shutdown"),
    )

    def site_env(self) -> dict[str, str]:
        return {**super().site_env(), "LAB_HUEY_RETRIES": str(self.retries),
                "LAB_HUEY_RETRY_DELAY_S": str(self.retry_delay_s)}
