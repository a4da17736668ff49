"""The design that loses nothing: a job ledger (labsite.models.EmailJob) in front of Huey's at-most-once queue.

- The request writes the job row and, in the same transaction's on-commit hook, enqueues the task
  (labsite.tasks.deliver_email_job_on_commit, djhuey's `on_commit_task`): a rolled-back request enqueues
  nothing, a committed one is in the ledger whatever happens to the enqueue after it.
- The task claims the job (`pending` -> `sending`, with a lease), sends the email with the job's fixed
  Message-ID through the very same job function as every other path (labsite.jobs), then marks it `delivered`.
  A job that is `delivered` (or claimed by a live lease) is not sent again: a repeated or racing task is a no-op.
- An SMTP error puts the job back to `pending` and raises, so Huey retries with exponential backoff.
- The reconciler (`reconcile`, run every second by `manage.py reconcile_jobs`) enqueues again every job left
  `pending` past the deadline (its task died with a consumer, its enqueue died with a web worker, its retries
  ran out) and every `sending` job whose lease expired (its worker died mid-send).

The one window no SMTP client can close by itself: the server answered 250 and the worker died before it
committed `delivered` (the rest of the SMTP exchange, QUIT included, and one SQLite UPDATE: milliseconds, and
the consumer kills of notebook 05 do land in it). The job's lease expires and the reconciler counts an *unknown
outcome* (`uncertain_attempts`). Before sending such a job again, the task asks the provider's message-status
API (LAB_PROVIDER_STATUS_URL; real providers offer message-event APIs, the lab's SMTP server serves one)
whether that Message-ID was accepted; if so the job is marked delivered (`confirmed_by_provider`), not sent
twice. Without such an API the job is sent again with the same Message-ID: a duplicate any receiver can
recognise, and the lab counts it from the SMTP server's record.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from labsite import jobs, tasks  # a module import: labsite.tasks wraps deliver_job, so either may load first
from labsite.models import EmailJob

State = EmailJob.State
LEDGER = settings.LAB_LEDGER


def deliver_job(job_id: str) -> dict:
    """Send one ledger job's email at most once per claim; a job already delivered or claimed is left alone."""
    now = timezone.now()
    job = EmailJob.objects.filter(pk=job_id).first()
    if job is None or job.state != State.PENDING:
        return {"job_id": str(job_id), "state": job.state if job else "unknown", "skipped": True}
    attempt = job.attempts + 1
    claimed = EmailJob.objects.filter(pk=job_id, state=State.PENDING, attempts=job.attempts).update(
        state=State.SENDING, attempts=attempt, lease_until=now + timedelta(seconds=LEDGER["lease_s"]),
        updated_at=now)
    if not claimed:  # another task claimed it between our read and our update
        return {"job_id": str(job_id), "state": "claimed elsewhere", "skipped": True}
    if job.uncertain_attempts > job.confirmed_by_provider and settings.LAB_PROVIDER_STATUS_URL:
        # A previous attempt died without reporting: it may have got its 250. Ask the provider first.
        try:
            already = provider_accepted(job.message_id)
        except Exception as exc:
            EmailJob.objects.filter(pk=job_id, state=State.SENDING, attempts=attempt).update(
                state=State.PENDING, attempts=job.attempts, lease_until=None, last_error=repr(exc)[:1000],
                updated_at=timezone.now())
            raise
        if already:
            EmailJob.objects.filter(pk=job_id, state=State.SENDING, attempts=attempt).update(
                state=State.DELIVERED, attempts=job.attempts, lease_until=None, delivered_at=timezone.now(),
                confirmed_by_provider=F("confirmed_by_provider") + 1, updated_at=timezone.now())
            return {"job_id": str(job_id), "state": "delivered", "confirmed_by_provider": True}
    try:
        result = jobs.send_welcome_email(job.to, message_id=job.message_id)
    except Exception as exc:
        # No 250 came back: the server did not take the message. Release the claim, then let Huey retry.
        gave_up = attempt >= LEDGER["max_attempts"]
        EmailJob.objects.filter(pk=job_id, state=State.SENDING, attempts=attempt).update(
            state=State.FAILED if gave_up else State.PENDING, lease_until=None, last_error=repr(exc)[:1000],
            updated_at=timezone.now())
        raise
    # The crash window: between the 250 above and this commit (see the module's docstring).
    EmailJob.objects.filter(pk=job_id, state=State.SENDING, attempts=attempt).update(
        state=State.DELIVERED, lease_until=None, delivered_at=timezone.now(), updated_at=timezone.now())
    return {**result, "job_id": str(job_id), "attempt": attempt}


def provider_accepted(message_id: str) -> bool:
    """Whether the email provider already accepted this Message-ID (its message-status API)."""
    import json
    import urllib.parse
    import urllib.request

    url = f"{settings.LAB_PROVIDER_STATUS_URL}?{urllib.parse.urlencode({'message_id': message_id})}"
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (a configured http URL)
        return bool(json.loads(response.read())["accepted"])


def accept_email(to: str) -> EmailJob:
    """Record the job and enqueue its task once the transaction commits."""
    job_id = uuid.uuid4()
    with transaction.atomic():
        job = EmailJob.objects.create(id=job_id, to=to, message_id=f"<{job_id.hex}@tasks-lab.test>")
        tasks.deliver_email_job_on_commit(str(job.id))
    return job


def reconcile(now=None) -> dict:
    """Enqueue again every job left behind; returns how many of each kind it found."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=LEDGER["deadline_s"])
    counts = {"pending": 0, "expired_lease": 0}
    expired = EmailJob.objects.filter(state=State.SENDING, lease_until__lt=now).values_list("pk", "attempts")
    for pk, attempts in list(expired):
        # The worker never reported: it may have died before or after the server's 250.
        if EmailJob.objects.filter(pk=pk, state=State.SENDING, attempts=attempts).update(
                state=State.PENDING, lease_until=None, uncertain_attempts=F("uncertain_attempts") + 1,
                reenqueued=F("reenqueued") + 1, updated_at=now):
            tasks.deliver_email_job(str(pk))
            counts["expired_lease"] += 1
    for pk in list(EmailJob.objects.filter(state=State.PENDING, updated_at__lt=stale).values_list("pk", flat=True)):
        if EmailJob.objects.filter(pk=pk, state=State.PENDING, updated_at__lt=stale).update(
                reenqueued=F("reenqueued") + 1, updated_at=now):
            tasks.deliver_email_job(str(pk))
            counts["pending"] += 1
    return counts
