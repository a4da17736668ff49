"""Celery through Django's Tasks API (django-tasks-celery's CeleryBackend), on the lab's own redis-server as its
README configures it (Redis broker and result backend, extended results): the same worker and queue as celery_redis,
the tasks enqueued with `task.enqueue()` instead of `.delay()`."""

from __future__ import annotations

from helpers.stack.queues import register
from helpers.stack.queues.celery_redis import CeleryRedis


@register
class DjangoTasksCelery(CeleryRedis):
    """Each Django task is registered as a Celery task named after its module path; Celery's defaults otherwise, so
    a worker killed mid-task loses it (at-most-once), as with celery_redis. The result backend keeps each task's
    state and return value, which get_result() reads; an id it never saw reads as READY (Celery's PENDING), so the
    status endpoint answers "queued" for it, not 404."""

    name = "django_tasks_celery"
    label = "Celery via Django Tasks (django-tasks-celery), Redis"
    in_matrix = False
