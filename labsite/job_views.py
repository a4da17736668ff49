"""Endpoints of the thumbnail job (blocking and deferred, like the email) and of both jobs through Django's
Tasks API, whose backend (immediate or Huey) the TASKS setting picks."""

from django.http import JsonResponse
from django.tasks import TaskResultStatus, default_task_backend
from django.tasks.exceptions import TaskResultDoesNotExist
from django.views.decorators.csrf import csrf_exempt

from labsite import djtasks, tasks, thumbnails
from labsite.api import allow, email_parameter, json_error

DJTASK_STATES = {TaskResultStatus.READY: "queued", TaskResultStatus.RUNNING: "running",
                 TaskResultStatus.SUCCESSFUL: "delivered", TaskResultStatus.FAILED: "failed"}


def accepted(task_id: str, location: str) -> JsonResponse:
    response = JsonResponse({"state": "queued", "task_id": task_id}, status=202)
    response["Location"] = location
    return response


@csrf_exempt
@allow("POST")
def thumbnail_blocking(request):
    result = thumbnails.make_thumbnail(str(thumbnails.accept_upload(request)))
    return JsonResponse({"state": "delivered", "result": result})


@csrf_exempt
@allow("POST")
def thumbnail_deferred(request):
    handle = tasks.make_thumbnail(str(thumbnails.accept_upload(request)))
    return accepted(handle.id, f"/tasks/{handle.id}/")


def djtask_response(result) -> JsonResponse:
    """200 with the return value when the backend ran the task in the request, 202 when it queued it."""
    if result.status == TaskResultStatus.SUCCESSFUL:
        return JsonResponse({"state": "delivered", "result": result.return_value, "backend": result.backend})
    if result.status == TaskResultStatus.FAILED:
        return json_error(502, "the job failed", errors=[e.exception_class_path for e in result.errors])
    return accepted(result.id, f"/djtasks/{result.id}/")


@csrf_exempt
@allow("POST")
def email_djtask(request):
    return djtask_response(djtasks.send_welcome_email.enqueue(email_parameter(request)))


@csrf_exempt
@allow("POST")
def thumbnail_djtask(request):
    return djtask_response(djtasks.make_thumbnail.enqueue(str(thumbnails.accept_upload(request))))


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
