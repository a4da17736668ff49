"""A Celery task's state, where the deferred view's 202 points when the queue is Celery (QUEUE_API "celery").

Celery keeps a task's state only in a result backend, and the seed article's settings configure none (Celery's
default): then nothing can tell a queued task from a finished or an unknown one, and this says so."""

from celery.result import AsyncResult
from django.http import JsonResponse

from labsite.celery import app
from labsite.views.common import allow, json_error, uuid_parameter

CELERY_STATES = {"PENDING": "queued", "RECEIVED": "queued", "RETRY": "queued", "STARTED": "running",
                 "SUCCESS": "delivered", "FAILURE": "failed", "REVOKED": "failed"}


@allow("GET", "HEAD")
def celery_status(request, task_id: str):
    task_id = uuid_parameter(task_id, "task id")
    if not app.conf.result_backend:
        return json_error(404, "this queue keeps no results (no Celery result backend)", task_id=task_id)
    result = AsyncResult(task_id, app=app)
    # PENDING is also what Celery answers for an id it never saw
    return JsonResponse({"task_id": task_id, "state": CELERY_STATES.get(result.state, result.state.lower())})
