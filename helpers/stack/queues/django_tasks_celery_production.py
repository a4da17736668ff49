"""Celery through Django's Tasks API (django-tasks-celery) on Redis with the settings Celery's docs recommend for
tasks that must not be lost, those of celery_rabbitmq_production, plus the Redis transport's visibility timeout
(the same broker, worker and result backend as django_tasks_celery, other settings):

- task_acks_late (https://docs.celeryq.dev/en/stable/userguide/configuration.html#task-acks-late);
- task_reject_on_worker_lost (https://docs.celeryq.dev/en/stable/userguide/configuration.html#task-reject-on-worker-lost);
- worker_prefetch_multiplier = 1, "Reserve one task at a time"
  (https://docs.celeryq.dev/en/stable/userguide/optimizing.html#reserve-one-task-at-a-time);
- on Redis, an unacknowledged task comes back after the visibility timeout, which the docs say to set longer than the
  longest task (https://docs.celeryq.dev/en/stable/getting-started/backends-and-brokers/redis.html#visibility-timeout):
  an hour by default, VISIBILITY_TIMEOUT_S here so the lab can measure it (celery_redis_acks_late does the same).
"""

from __future__ import annotations

from helpers.stack.queues import AT_LEAST_ONCE_AFTER_THE_POP, register
from helpers.stack.queues.celery_rabbitmq_production import CeleryRabbitMQProduction
from helpers.stack.queues.celery_redis_acks_late import CeleryRedisAcksLate
from helpers.stack.queues.django_tasks_celery import DjangoTasksCelery

VISIBILITY_TIMEOUT_S = CeleryRedisAcksLate.visibility_timeout_s


@register
class DjangoTasksCeleryProduction(DjangoTasksCelery):
    """A task is acknowledged once it has finished; one whose pool process dies is requeued, one whose whole worker
    dies comes back once the visibility timeout has passed, so a task can run twice; one taken off the list by a
    worker killed before it recorded the task as unacknowledged is lost (celery_redis_acks_late says why)."""

    name = "django_tasks_celery_production"
    label = "Celery via Django Tasks (django-tasks-celery), Redis, production settings"
    delivery = AT_LEAST_ONCE_AFTER_THE_POP
    setting, production_of = "production", DjangoTasksCelery.name
    redelivery_after_s = VISIBILITY_TIMEOUT_S
    recommended_by = (*CeleryRabbitMQProduction.recommended_by, CeleryRedisAcksLate.recommended_by[-1])

    def site_env(self) -> dict[str, str]:
        return {**super().site_env(), "LAB_CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT_S)}
