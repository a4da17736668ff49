"""The design that loses nothing: a job ledger (labsite.models.EmailJob) in front of an at-most-once queue (any of
the site's: the task is enqueued through labsite.dispatch).

- The request writes the job row and, in the same transaction's on-commit hook, enqueues the task
  (labsite.tasks.EMAIL_JOB): a rolled-back request enqueues nothing, a committed one is in the ledger
  whatever happens to the enqueue after it (a failed enqueue is logged; the reconciler makes up for it). A
  client's Idempotency-Key makes a retried request answer with the first job, not a second one.
- The task claims the job (`pending` -> `sending`, with a lease), sends the email with the job's fixed
  Message-ID through the very same job function as every other path (labsite.jobs), then marks it `delivered`.
  A job that is `delivered` (or claimed by a live lease) is not sent again: a repeated or racing task is a no-op.
- The lease is taken when the claim holds; what is left of it bounds the provider check and every socket
  operation of the send, and an attempt with too little left gives the claim back unsent. A send that finishes
  after its lease ran out is counted (`lease_overruns`) and logged.
- A definite SMTP refusal (4xx/5xx) puts the job back to `pending` with `next_attempt_at` after an exponential
  backoff, and raises (the task's own state says the attempt failed); the reconciler enqueues the job again once
  that moment has passed. No queue's retry machinery is involved, so retries work alike on every backend. A
  timeout or a dropped connection is no refusal: the server may have taken the message, so the attempt counts as
  uncertain and the next one asks the provider first.
- The reconciler (`reconcile`, run every second by `manage.py reconcile_jobs`) enqueues again every job whose retry
  is due, every job left `pending` past the deadline (a far longer one while the queue holds tasks) with no retry
  due (its task died with a consumer, its enqueue died with a web worker) and every `sending` job whose lease
  expired (its worker died mid-send). A job it cannot enqueue is logged and counted; the pass goes on.

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

import logging
import smtplib
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

# Module imports: labsite.tasks wraps deliver_job and labsite.dispatch imports labsite.tasks, so any may load first.
from labsite import dispatch, jobs, tasks
from labsite.models import EmailJob

State = EmailJob.State
LEDGER = settings.LAB_LEDGER
log = logging.getLogger(__name__)
PROVIDER_CHECK_MAX_S = 5.0
MIN_SEND_S = 0.5  # an attempt with less of its lease left than this gives the claim back instead of sending


class LeaseTooShort(Exception):
    """The claim's lease ran too low before the send could start (a slow claim, a slow provider check)."""


def refused(exc: BaseException) -> bool:
    """True only for a definite refusal: the SMTP server answered 4xx or 5xx, or refused the connection, so it did
    not take the message. A timeout or a dropped connection may come after the server took it: unknown outcome."""
    if isinstance(exc, (smtplib.SMTPRecipientsRefused, ConnectionRefusedError)):  # refused before any data
        return True
    return isinstance(exc, smtplib.SMTPResponseException) and 400 <= exc.smtp_code < 600


def retry_delay_s(attempt: int) -> float:
    """The delay before retry number `attempt` (1-based): retry_delay x backoff^(attempt-1)."""
    return LEDGER["retry_delay_s"] * LEDGER["retry_backoff"] ** max(0, attempt - 1)


def deliver_job(job_id: str) -> dict:
    """Send one ledger job's email at most once per claim; a job already delivered or claimed is left alone."""
    job = EmailJob.objects.filter(pk=job_id).first()
    if job is None or job.state != State.PENDING:
        return {"job_id": str(job_id), "state": job.state if job else "unknown", "skipped": True}
    attempt = job.attempts + 1
    mine = EmailJob.objects.filter(pk=job_id, state=State.SENDING, attempts=attempt)
    # The lease starts when the claim holds, not before its UPDATE waited for the database's write lock.
    lease_until = timezone.now() + timedelta(seconds=LEDGER["lease_s"])
    claimed = EmailJob.objects.filter(pk=job_id, state=State.PENDING, attempts=job.attempts).update(
        state=State.SENDING, attempts=attempt, lease_until=lease_until, next_attempt_at=None, updated_at=timezone.now())
    if not claimed:  # another task claimed it between our read and our update
        return {"job_id": str(job_id), "state": "claimed elsewhere", "skipped": True}

    def lease_left_s() -> float:
        return (lease_until - timezone.now()).total_seconds()

    def give_back(**changes) -> None:
        """Release the claim: pending again, its retry due after the backoff (the reconciler enqueues it then)."""
        now = timezone.now()
        mine.update(state=State.PENDING, lease_until=None, updated_at=now,
                    next_attempt_at=now + timedelta(seconds=retry_delay_s(attempt)), **changes)

    try:
        # A previous attempt ended without a definite answer: it may have got its 250. Ask the provider first.
        uncertain = job.uncertain_attempts > job.confirmed_by_provider and settings.LAB_PROVIDER_STATUS_URL
        if uncertain and provider_accepted(job.message_id, timeout_s=min(PROVIDER_CHECK_MAX_S, lease_left_s() / 3)):
            mine.update(state=State.DELIVERED, lease_until=None, delivered_at=timezone.now(),
                        confirmed_by_provider=F("confirmed_by_provider") + 1, updated_at=timezone.now())
            return {"job_id": str(job_id), "state": "delivered", "confirmed_by_provider": True}
        send_s = lease_left_s() - MIN_SEND_S
        if send_s < MIN_SEND_S:
            raise LeaseTooShort(f"{lease_left_s():.2f} s of the lease left before DATA")
    except Exception as exc:
        give_back(attempts=job.attempts, last_error=repr(exc)[:1000])  # nothing was sent: not an attempt
        raise
    try:
        # Every socket operation of the exchange ends before the lease does (the timeout applies to each).
        result = jobs.send_welcome_email(job.to, message_id=job.message_id, timeout_s=send_s)
    except Exception as exc:
        if attempt >= LEDGER["max_attempts"]:
            mine.update(state=State.FAILED, lease_until=None, last_error=repr(exc)[:1000], updated_at=timezone.now())
        elif refused(exc):  # the server did not take it: send again after the backoff
            give_back(last_error=repr(exc)[:1000])
        else:  # it may have taken it: the next attempt asks the provider before it sends
            give_back(last_error=repr(exc)[:1000], uncertain_attempts=F("uncertain_attempts") + 1)
        raise
    # The crash window: between the 250 above and this commit (see the module's docstring).
    if not mine.update(state=State.DELIVERED, lease_until=None, delivered_at=timezone.now(), updated_at=timezone.now()):
        # Our lease ran out and the job moved on (the reconciler may have handed it to another worker).
        EmailJob.objects.filter(pk=job_id).update(lease_overruns=F("lease_overruns") + 1)
        log.error("job %s: delivered after its lease ran out (attempt %s); another worker may send it too",
                  job_id, attempt)
        return {**result, "job_id": str(job_id), "attempt": attempt, "lease_overrun": True}
    return {**result, "job_id": str(job_id), "attempt": attempt}


def provider_accepted(message_id: str, timeout_s: float = PROVIDER_CHECK_MAX_S) -> bool:
    """Whether the email provider already accepted this Message-ID (its message-status API)."""
    import json
    import urllib.parse
    import urllib.request

    url = f"{settings.LAB_PROVIDER_STATUS_URL}?{urllib.parse.urlencode({'message_id': message_id})}"
    with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 (a configured http URL)
        return bool(json.loads(response.read())["accepted"])


class IdempotencyConflict(Exception):
    """The Idempotency-Key names a job for another recipient."""


def job_for_key(idempotency_key: str, to: str) -> EmailJob | None:
    """The job an earlier request with this Idempotency-Key created, if any (for the same recipient only)."""
    earlier = EmailJob.objects.filter(idempotency_key=idempotency_key).first()
    if earlier is not None and earlier.to != to:
        raise IdempotencyConflict(idempotency_key)
    return earlier


def enqueue_job(job_id) -> str:
    """Enqueue the job's task on the site's queue (whichever API the settings chose); returns the task's id."""
    return dispatch.enqueue(tasks.EMAIL_JOB, str(job_id)).task_id


def accept_email(to: str, idempotency_key: str | None = None) -> EmailJob:
    """Record the job and enqueue its task once the transaction commits. An enqueue that fails after the commit is
    logged, not raised (robust on-commit): the job is in the ledger, and the reconciler enqueues it after the
    deadline; answering 500 would make the client retry and create a second job."""
    job_id = uuid.uuid4()
    try:
        with transaction.atomic():
            job = EmailJob.objects.create(id=job_id, to=to, message_id=f"<{job_id.hex}@tasks-lab.test>",
                                          idempotency_key=idempotency_key or None)
            transaction.on_commit(lambda: enqueue_job(job_id), robust=True)
    except IntegrityError:
        earlier = job_for_key(idempotency_key, to) if idempotency_key else None
        if earlier is None:
            raise
        return earlier  # a request with the same key raced this one and won
    return job


def reenqueue_deadline_s(times_reenqueued: int, queue_empty: bool) -> float:
    """How long a pending job is left alone before the reconciler enqueues it again. With the queue empty, its task
    cannot be waiting there (it died with a worker, or its enqueue failed): the deadline. Otherwise it may just be
    waiting behind others, and a copy of it would lengthen that queue for every job in it: eight times the deadline,
    doubled for every time it was enqueued again already (at most 512 times)."""
    if queue_empty:
        return LEDGER["deadline_s"]
    return LEDGER["deadline_s"] * 2 ** (3 + min(times_reenqueued, 6))


def reconcile(now=None) -> dict:
    """Enqueue again every job left behind, and every job whose retry is due; returns how many of each kind it found
    and how many it could not enqueue (each logged: one failing job does not stop the pass)."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=LEDGER["deadline_s"])
    counts = {"retry": 0, "pending": 0, "expired_lease": 0, "errors": 0}

    def enqueue_again(pk, kind: str, still_left_behind: Q, **changes) -> None:
        try:
            with transaction.atomic():
                if EmailJob.objects.filter(still_left_behind, pk=pk).update(updated_at=now, **changes):
                    enqueue_job(pk)
                    counts[kind] += 1
        except Exception:
            counts["errors"] += 1
            log.exception("reconcile: could not enqueue job %s again", pk)

    queue_empty = dispatch.backlog() == 0  # before this pass adds any
    expired = EmailJob.objects.filter(state=State.SENDING, lease_until__lt=now).values_list("pk", "attempts")
    for pk, attempts in list(expired):
        # The worker never reported: it may have died before or after the server's 250.
        enqueue_again(pk, "expired_lease", Q(state=State.SENDING, attempts=attempts), state=State.PENDING,
                      lease_until=None, uncertain_attempts=F("uncertain_attempts") + 1, reenqueued=F("reenqueued") + 1)
    # A retry due: enqueued once (next_attempt_at cleared), then it is a pending job like any other.
    due = EmailJob.objects.filter(state=State.PENDING, next_attempt_at__lte=now).values_list("pk", "next_attempt_at")
    for pk, next_attempt_at in list(due):
        enqueue_again(pk, "retry", Q(state=State.PENDING, next_attempt_at=next_attempt_at), next_attempt_at=None)
    # Pending past its deadline (a longer one while the queue holds tasks: see reenqueue_deadline_s), no retry due.
    left_behind = Q(state=State.PENDING, updated_at__lt=stale, next_attempt_at__isnull=True)
    for pk, updated_at, times in list(EmailJob.objects.filter(left_behind).values_list("pk", "updated_at",
                                                                                       "reenqueued")):
        if updated_at < now - timedelta(seconds=reenqueue_deadline_s(times, queue_empty)):
            enqueue_again(pk, "pending", left_behind & Q(updated_at=updated_at), reenqueued=F("reenqueued") + 1)
    return counts
