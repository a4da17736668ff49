"""The job-ledger design (labsite/ledger.py): the welcome email accepted into the ledger, and a job's state."""

import time

from django.db import transaction
from django.http import JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from labsite import ledger
from labsite.models import EmailJob
from labsite.views.common import (
    BadRequest,
    accepted,
    allow,
    email_parameter,
    json_error,
    shed_when_backlogged,
    uuid_parameter,
)
from labsite.views.transactions import hold_ms_parameter

MAX_IDEMPOTENCY_KEY = 255


def idempotency_key(request) -> str | None:
    """The Idempotency-Key header: printable ASCII, at most 255 characters; None when absent."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not 0 < len(key) <= MAX_IDEMPOTENCY_KEY or not all(" " < ch <= "~" for ch in key):
        raise BadRequest(f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters")
    return key


@csrf_exempt
@allow("POST")
def email_ledger(request):
    """Like /email/deferred/, plus the job row, written in the transaction that answers the request. A retry that
    carries the first request's Idempotency-Key gets the first job; another recipient under that key is a 422. Two
    requests with the same new key at once both miss the first look-up; the database's unique key lets one insert,
    and the other finds that job inside accept_email, so the conflict can come from either call. `hold_ms` (0 by
    default, at most transactions.MAX_HOLD_MS) holds that transaction open so long after the job is written, like a
    view that has more to do after accepting the email: the job's task must not run before the commit (notebook 05's
    slow_commit)."""
    to = email_parameter(request)
    key = idempotency_key(request)
    hold_ms = hold_ms_parameter(request, default=0)
    try:
        job = ledger.job_for_key(key, to) if key else None
        if job is None:
            shed_when_backlogged()
            with transaction.atomic():
                job = ledger.accept_email(to, key)
                time.sleep(hold_ms / 1000)
    except ledger.IdempotencyConflict:
        return json_error(422, "this Idempotency-Key was used for another recipient")
    return accepted({"state": job.state, "job_id": str(job.id), "message_id": job.message_id},
                    reverse("job-status", args=[job.id]))


COUNTERS = ("attempts", "uncertain_attempts", "confirmed_by_provider", "reenqueued", "lease_overruns",
            "enqueue_failures")


def epoch(moment) -> float | None:
    return moment.timestamp() if moment else None


@allow("GET", "HEAD")
def job_status(request, job_id: str):
    """A job's state ("failed" for good after a permanent refusal or its last attempt, with `last_error`) and every
    counter of its attempts."""
    job_id = uuid_parameter(job_id, "job id")
    job = EmailJob.objects.filter(pk=job_id).first()
    if job is None:
        return json_error(404, "unknown job id", job_id=job_id)
    return JsonResponse({"job_id": job_id, "state": job.state, "to": job.to, "message_id": job.message_id,
                         **{counter: getattr(job, counter) for counter in COUNTERS},
                         "last_error": job.last_error or None, "created_at": epoch(job.created_at),
                         "next_attempt_at": epoch(job.next_attempt_at), "delivered_at": epoch(job.delivered_at)})
