"""Celery on Redis with its at-least-once settings (task_acks_late, task_reject_on_worker_lost, a visibility
timeout of LAB_CELERY_VISIBILITY_TIMEOUT s): the same worker and queue as celery_redis, other settings."""

from __future__ import annotations

from helpers.stack.queues import AT_LEAST_ONCE_AFTER_THE_POP, register
from helpers.stack.queues.celery_redis import CeleryRedis


@register
class CeleryRedisAcksLate(CeleryRedis):
    """A task is acknowledged once it has finished. A task whose pool process dies is rejected and requeued
    (reject_on_worker_lost); one whose whole worker dies stays unacknowledged, and the Redis transport hands it out
    again once the visibility timeout has passed, so a task can run twice. Not from the pop, though: kombu's Redis
    transport takes the task off the list with BRPOP and records it as unacknowledged in a second round trip
    (`_brpop_read`, then `QoS.append`), so a worker killed between the two loses it (kombu issue 305, celery issue
    4354)."""

    name = "celery_redis_acks_late"
    label = "Celery, Redis, acks late"
    delivery = AT_LEAST_ONCE_AFTER_THE_POP
    visibility_timeout_s = 10.0  # short enough to measure a redelivery (Celery's default: an hour)
    redelivery_after_s = visibility_timeout_s  # a dead worker's unacknowledged task comes back after it
    setting, production_of = "production", CeleryRedis.name
    recommended_by = (
        ("task_acks_late = True", "https://docs.celeryq.dev/en/stable/userguide/configuration.html#task-acks-late"),
        ("task_reject_on_worker_lost = True",
         "https://docs.celeryq.dev/en/stable/userguide/configuration.html#task-reject-on-worker-lost"),
        (f"visibility_timeout = {visibility_timeout_s:g} s (the docs: longer than the longest task; an hour by "
         "default, short here to measure)",
         "https://docs.celeryq.dev/en/stable/getting-started/backends-and-brokers/redis.html#visibility-timeout"),
    )

    def site_env(self) -> dict[str, str]:
        return {**super().site_env(), "LAB_CELERY_VISIBILITY_TIMEOUT": str(self.visibility_timeout_s)}
