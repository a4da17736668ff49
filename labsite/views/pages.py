"""The sign-up page: what a person (or the lab's browser probe) sees of the two paths.

One form per path (blocking, deferred), each sendable three ways:
- a classic form POST answered by a 303 redirect to the result page (a full navigation, POST/redirect/GET);
- a button that posts with fetch() and shows the answer in place (deferred: "queued", then it polls the
  task's status, where the answer's Location points, until "delivered");
- a button that posts with a synchronous XMLHttpRequest, which holds the page's main thread until the server
  answers: the way of waiting that Interaction to Next Paint (INP) does see.

The POSTs are CSRF-protected (the page carries the token). Behind them run the same job and the same task, on the
chosen queue, as the JSON machine endpoints (the deferred one behind the same bounded backlog). A POST that asks for
JSON (`Accept: application/json`) gets the JSON answer; a browser's form navigation gets the redirect, or the page
again with the error (400, or 503 with Retry-After when the queue is full).
"""

from urllib.parse import urlencode

from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse

from labsite import dispatch, jobs, tasks
from labsite.views.common import (
    BadRequest,
    QueueFull,
    Refused,
    allow,
    delivered,
    email_parameter,
    queued,
    shed_when_backlogged,
    task_id_parameter,
)

PATHS = ("blocking", "deferred")
POLL_INTERVAL_MS = 100  # how often a page asks the task's status whether a deferred email went out


def wants_json(request) -> bool:
    return request.get_preferred_type(["text/html", "application/json"]) == "application/json"


def page_context(**extra) -> dict:
    forms = [{"path": path, "action": reverse(f"signup-{path}")} for path in PATHS]
    return {"forms": forms, "poll_ms": POLL_INTERVAL_MS, **extra}


@allow("GET", "HEAD")
def signup_page(request):
    return render(request, "labsite/signup.html", page_context(to=request.GET.get("to", "")))


def signup(request, path: str):
    try:
        to = email_parameter(request)
        if path == "deferred":
            shed_when_backlogged()
    except Refused as exc:
        if wants_json(request):
            raise
        context = page_context(to=request.POST.get("to", ""), error=str(exc), error_path=path)
        response = render(request, "labsite/signup.html", context, status=exc.status)
        if isinstance(exc, QueueFull):
            response["Retry-After"] = str(exc.retry_after_s)
        return response
    query = {"path": path, "to": to}
    if path == "blocking":
        result = jobs.send_welcome_email(to)
        if wants_json(request):
            return delivered(result)
        query["message_id"] = result["message_id"]
    else:
        task_id = dispatch.enqueue(tasks.WELCOME_EMAIL, to).task_id
        if wants_json(request):
            return queued(task_id)
        query["task_id"] = task_id
    response = HttpResponseRedirect(f"{reverse('signup-done')}?{urlencode(query)}")
    response.status_code = 303  # See Other: the browser follows with a GET, a reload does not post again
    return response


@allow("POST")
def signup_blocking(request):
    return signup(request, "blocking")


@allow("POST")
def signup_deferred(request):
    return signup(request, "deferred")


@allow("GET", "HEAD")
def signup_done(request):
    path = request.GET.get("path")
    if path not in PATHS:
        raise BadRequest(f"path must be one of {', '.join(PATHS)}")
    task_id = request.GET.get("task_id")
    status_url = ""
    if path == "deferred":
        task_id = task_id_parameter(task_id, dispatch.queue_api())
        status_url = reverse("task-status", args=[task_id])
    context = {"path": path, "to": request.GET.get("to", ""), "task_id": task_id, "status_url": status_url,
               "message_id": request.GET.get("message_id", ""), "poll_ms": POLL_INTERVAL_MS}
    return render(request, "labsite/signup_done.html", context)
