"""The welcome email sent inside the request (blocking) or enqueued on the run's queue (deferred), the baselines
they are measured against (a GET no-op; a POST that parses and validates the deferred view's form and enqueues
nothing), and a Huey task's state (for the thumbnail task too).

Machine endpoints take no cookies and no session, so CSRF protection has nothing to protect here."""

import time

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from huey.contrib.djhuey import HUEY
from huey.utils import Error

from labsite import dispatch, jobs, tasks
from labsite.views.common import (
    allow,
    delivered,
    email_parameter,
    json_error,
    queued,
    shed_when_backlogged,
    uuid_parameter,
)


@allow("GET", "HEAD")
def noop(request):
    return JsonResponse({"ok": True})


@csrf_exempt
@allow("POST")
def email_validate(request):
    """The deferred view without its enqueue: the same form through the same parser (email_parameter), the same 400s.
    Deferred p50 minus this p50 is what the enqueue adds to a request."""
    return JsonResponse({"valid": True, "to": email_parameter(request)})


@csrf_exempt
@allow("POST")
def email_blocking(request):
    return delivered(jobs.send_welcome_email(email_parameter(request)))


@csrf_exempt
@allow("POST")
def email_deferred(request):
    to = email_parameter(request)
    shed_when_backlogged()
    return queued(*dispatch.enqueue_welcome_email(to))


def task_state(task_id: str) -> dict | None:
    """Where a task is now. Read in the order a task moves (queued, running, done), so a task that
    moves while we look is found in its later state; a second look covers the instant between
    dequeue and the running marker."""
    for attempt in range(2):
        if any(t.id == task_id for t in HUEY.pending()):
            return {"state": "queued"}
        started = HUEY.get(tasks.RUNNING_KEY.format(task_id), peek=True)
        outcome = HUEY.get(task_id, peek=True)
        if isinstance(outcome, Error):
            return {"state": "failed", "error": outcome.metadata.get("error"), "started_at": started}
        if outcome is not None:
            return {"state": "delivered", "result": outcome, "started_at": started}
        if started is not None:
            return {"state": "running", "started_at": started}
        if attempt == 0:
            time.sleep(0.05)
    return None


@allow("GET", "HEAD")
def task_status(request, task_id: str):
    task_id = uuid_parameter(task_id, "task id")
    state = task_state(task_id)
    if state is None:
        return json_error(404, "unknown task id", task_id=task_id)
    return JsonResponse({"task_id": task_id, **state})
