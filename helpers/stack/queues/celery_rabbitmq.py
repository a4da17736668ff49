"""Celery on RabbitMQ, its documented default broker, with Celery's default settings: the lab's own broker
(helpers.stack.rabbitmq_server); the broker pushes each message to a worker's open consumer (no polling, no pop)."""

from __future__ import annotations

from helpers.stack import rabbitmq_server
from helpers.stack.queues import register
from helpers.stack.queues.celery_worker import QUEUE, CeleryWorker


@register
class CeleryRabbitMQ(rabbitmq_server.UsesRabbitMQ, CeleryWorker):
    """By default a worker acknowledges a task just before running it: a worker killed mid-task loses it,
    at-most-once. The tasks it had prefetched (4 per pool process) are unacknowledged, and RabbitMQ hands them to
    another consumer as soon as the dead worker's connection closes."""

    name = "celery_rabbitmq"
    label = "Celery, RabbitMQ"
    delivery = "at-most-once"
    queue_name = QUEUE
    in_matrix = False
