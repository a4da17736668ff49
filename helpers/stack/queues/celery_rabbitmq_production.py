"""Celery on RabbitMQ with the settings Celery's own docs recommend for tasks that must not be lost (the same broker
and worker as celery_rabbitmq, other settings):

- task_acks_late: acknowledge a task once it has finished, not as it starts (Celery's configuration reference,
  https://docs.celeryq.dev/en/stable/userguide/configuration.html#task-acks-late, and its FAQ "Should I use retry or
  acks_late?", https://docs.celeryq.dev/en/stable/faq.html#faq-acks-late-vs-retry);
- task_reject_on_worker_lost: a task whose pool process died is given back to the queue rather than acknowledged
  (https://docs.celeryq.dev/en/stable/userguide/configuration.html#task-reject-on-worker-lost);
- worker_prefetch_multiplier = 1: a worker reserves one task per pool process at a time, the "Reserve one task at a
  time" recipe of the Optimizing guide, which pairs it with acks_late
  (https://docs.celeryq.dev/en/stable/userguide/optimizing.html#reserve-one-task-at-a-time).
"""

from __future__ import annotations

from helpers.stack.queues import register
from helpers.stack.queues.celery_rabbitmq import CeleryRabbitMQ


@register
class CeleryRabbitMQProduction(CeleryRabbitMQ):
    """A task is acknowledged once it has finished; one whose worker dies, pool process or whole worker, stays
    unacknowledged, and RabbitMQ hands it to another consumer as soon as the dead connection closes (no visibility
    timeout to wait out): at-least-once, so a task can run twice."""

    name = "celery_rabbitmq_production"
    label = "Celery, RabbitMQ, production settings"
    delivery = "at-least-once"
    redelivery_after_s = 0.0  # at once, when the broker sees the killed worker's connection close
    setting, production_of = "production", CeleryRabbitMQ.name
    recommended_by = (
        ("task_acks_late = True", "https://docs.celeryq.dev/en/stable/userguide/configuration.html#task-acks-late"),
        ("task_reject_on_worker_lost = True",
         "https://docs.celeryq.dev/en/stable/userguide/configuration.html#task-reject-on-worker-lost"),
        ("worker_prefetch_multiplier = 1",
         "https://docs.celeryq.dev/en/stable/userguide/optimizing.html#reserve-one-task-at-a-time"),
    )
