"""Endpoints of the job-ledger design: the welcome email accepted into the ledger, and a job's state."""

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from labsite import ledger
from labsite.api import allow, email_parameter, json_error, uuid_parameter
from labsite.models import EmailJob


@csrf_exempt
@allow("POST")
def email_ledger(request):
    """Like /email/deferred/, plus the job row, written in the transaction that answers the request."""
    to = email_parameter(request)
    if (refusal := ledger.refuse_when_backlogged()) is not None:
        return refusal
    job = ledger.accept_email(to)
    response = JsonResponse({"state": job.state, "job_id": str(job.id), "message_id": job.message_id}, status=202)
    response["Location"] = f"/jobs/{job.id}/"
    return response


@allow("GET", "HEAD")
def job_status(request, job_id: str):
    job_id = uuid_parameter(job_id, "job id")
    job = EmailJob.objects.filter(pk=job_id).first()
    if job is None:
        return json_error(404, "unknown job id", job_id=job_id)
    return JsonResponse({"job_id": job_id, "state": job.state, "to": job.to, "message_id": job.message_id,
                         "attempts": job.attempts, "uncertain_attempts": job.uncertain_attempts,
                         "created_at": job.created_at.timestamp(),
                         "delivered_at": job.delivered_at.timestamp() if job.delivered_at else None})
