"""Where a queued task is now, read by id through the queue API the settings chose (labsite.dispatch), or the one
the URL names (/djtasks/<id>/: Django's Tasks API, whatever TASKS holds)."""

from django.http import JsonResponse

from labsite import dispatch
from labsite.views.common import allow, json_error, task_id_parameter


@allow("GET", "HEAD")
def task_status(request, task_id: str, api: str | None = None):
    queue = dispatch.queue_api(api)
    task_id = task_id_parameter(task_id, queue)
    try:
        state = queue.state(task_id)
    except dispatch.NoStates as exc:
        return json_error(404, str(exc), task_id=task_id)
    if state is None:
        return json_error(404, "unknown task id", task_id=task_id)
    return JsonResponse({"task_id": task_id, **state})
