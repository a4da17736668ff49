"""The welcome email sent inside the request (blocking) or enqueued on the run's queue (deferred), the baselines
they are measured against (a GET no-op; a POST that parses and validates the deferred view's form and enqueues
nothing).

Machine endpoints take no cookies and no session, so CSRF protection has nothing to protect here."""

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from labsite import dispatch, jobs, tasks
from labsite.views.common import allow, delivered, email_parameter, json_error, queued, shed_when_backlogged


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
    return queued(dispatch.enqueue(tasks.WELCOME_EMAIL, to).task_id)


@csrf_exempt
@allow("POST")
def email_design(request, design: str):
    """The deferred email in one of labsite.dispatch.EMAIL_DESIGNS (plain, the queue's own retries, its production
    settings); 404 for a design this site or its queue does not offer, before anything is enqueued."""
    if design not in dispatch.EMAIL_DESIGNS:
        return json_error(404, f"unknown design {design!r}", designs=list(dispatch.EMAIL_DESIGNS))
    to = email_parameter(request)
    shed_when_backlogged()
    try:
        return queued(dispatch.enqueue_email(design, to).task_id)
    except dispatch.DesignNotOffered as exc:
        return json_error(404, str(exc), design=design)
