"""Both jobs through Django's Tasks API (the "django_tasks" entries of labsite/tasks.py's tables), whose backend
(immediate or Huey's) the TASKS setting picks, and the Tasks API's view of a task."""

from django.http import JsonResponse
from django.tasks import TaskResultStatus, default_task_backend
from django.tasks.exceptions import TaskResultDoesNotExist
from django.views.decorators.csrf import csrf_exempt

from labsite import tasks, thumbnails
from labsite.views.common import allow, delivered, email_parameter, json_error, queued

DJTASK_STATES = {TaskResultStatus.READY: "queued", TaskResultStatus.RUNNING: "running",
                 TaskResultStatus.SUCCESSFUL: "delivered", TaskResultStatus.FAILED: "failed"}


def djtask_response(result) -> JsonResponse:
    """200 with the return value when the backend ran the task in the request, 202 when it queued it."""
    if result.status == TaskResultStatus.SUCCESSFUL:
        return delivered(result.return_value, backend=result.backend)
    if result.status == TaskResultStatus.FAILED:
        return json_error(502, "the job failed", errors=[e.exception_class_path for e in result.errors])
    return queued(result.id, "djtask-status")


@csrf_exempt
@allow("POST")
def email_djtask(request):
    return djtask_response(tasks.WELCOME_EMAIL["django_tasks"].enqueue(email_parameter(request)))


@csrf_exempt
@allow("POST")
def thumbnail_djtask(request):
    return djtask_response(tasks.THUMBNAIL["django_tasks"].enqueue(str(thumbnails.accept_upload(request))))


@allow("GET", "HEAD")
def djtask_status(request, result_id: str):
    if not default_task_backend.supports_get_result:
        return json_error(404, "this task backend keeps no results", result_id=result_id)
    try:
        result = default_task_backend.get_result(result_id)
    except TaskResultDoesNotExist:
        return json_error(404, "unknown task id", result_id=result_id)
    body = {"task_id": result.id, "state": DJTASK_STATES[result.status], "backend": result.backend}
    if result.status == TaskResultStatus.SUCCESSFUL:
        body["result"] = result.return_value
    elif result.status == TaskResultStatus.FAILED:
        body["errors"] = [e.exception_class_path for e in result.errors]
    return JsonResponse(body)
