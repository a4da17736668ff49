"""Both jobs through Django's Tasks API (the "django_tasks" entries of labsite/tasks.py's tables), on whatever
backend TASKS holds: Huey's on the Huey queue backends, the queue backend's own otherwise (Django's ImmediateBackend
runs them in the request). Their state: /djtasks/<id>/ (labsite.views.status)."""

from django.views.decorators.csrf import csrf_exempt

from labsite import dispatch, tasks, thumbnails
from labsite.views.common import (
    allow,
    delivered,
    email_parameter,
    json_error,
    max_body,
    queued,
    shed_when_backlogged,
)

API = "django_tasks"


def djtask_response(sent: dispatch.Enqueued):
    """200 with the return value when the backend ran the task in the request, 202 when it queued it."""
    if sent.state == "delivered":
        return delivered(sent.result)
    if sent.state == "failed":
        return json_error(502, "the job failed", errors=list(sent.errors))
    return queued(sent.task_id, "djtask-status")


@csrf_exempt
@allow("POST")
def email_djtask(request):
    to = email_parameter(request)
    shed_when_backlogged()
    return djtask_response(dispatch.enqueue(tasks.WELCOME_EMAIL, to, api=API))


@max_body(thumbnails.max_request_bytes)
@csrf_exempt
@allow("POST")
def thumbnail_djtask(request):
    shed_when_backlogged()  # before the upload is read and spooled, as /thumbnails/deferred/
    return djtask_response(dispatch.enqueue(tasks.THUMBNAIL, str(thumbnails.accept_upload(request)), api=API))
