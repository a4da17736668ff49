"""The design that loses nothing: a job ledger (labsite.models.EmailJob) in front of an at-most-once queue (any of
the site's: the task is enqueued through labsite.dispatch, so it works alike on every backend).

- The request writes the job row and, in the same transaction's on-commit hook, enqueues the task
  (labsite.tasks.EMAIL_JOB): a rolled-back request enqueues nothing, a committed one is in the ledger whatever
  happens to the enqueue after it. An enqueue that raises is logged (`labsite.ledger`, the process's stderr),
  counted (`enqueue_failures`) and made due at once, so the reconciler's next pass enqueues it again. A client's
  Idempotency-Key makes a retried request answer with the first job, not a second one.
- The task claims the job (`pending` -> `sending`, `attempts` + 1, a lease of `lease_s`) and sends the email with
  the job's fixed Message-ID through the same job function as every other path (labsite.jobs), then marks it
  `delivered`. A job `delivered`, `failed` or claimed by a live lease is not sent again.
- The fence: the attempt's whole SMTP exchange (connect, EHLO, MAIL, RCPT, DATA, QUIT) ends by a deadline at
  half the lease (FENCE), every socket operation getting what is left (labsite.jobs.send_by), so a worker never
  sends after its lease: once the lease is over, only a new claim sends, and it asks the provider first. An
  attempt with less than MIN_SEND_S left gives the claim back unsent. A send that still finishes after its lease
  (a process frozen between the deadline check and the syscall) is counted (`lease_overruns`) and logged.
- Failures: a 5xx refusal (550 no such user) is permanent: the job ends `failed` at once, with `last_error`. A
  4xx, a refused connection, a drop, a timeout, a failed provider check or too little lease left is transient:
  the job goes back to `pending` with `next_attempt_at` after retry_delay_s x retry_backoff^(n-1), at most
  retry_max_delay_s, and the reconciler enqueues it then (no queue's retry machinery: alike on every backend).
  Every claim counts towards max_attempts, sent or not; the last one ends the job `failed`. A drop or a timeout
  may come after the server took the message: the attempt counts as uncertain and the next one asks the provider.
- The reconciler (`reconcile`, every second by `manage.py reconcile_jobs`) enqueues, once its own transaction
  commits, every job whose retry is due, every job left `pending` past the deadline (a far longer one while the
  queue holds tasks) and every `sending` job whose lease expired (its worker died mid-send).

The window no SMTP client can close by itself: the server answered 250 and the worker died before it committed
`delivered`. Its lease expires and the reconciler counts an uncertain attempt; before sending such a job again the
task asks the provider's message-status API (LAB_PROVIDER_STATUS_URL) whether that Message-ID was accepted, and if
so marks it delivered (`confirmed_by_provider`). Without such an API it is sent again with the same Message-ID: a
duplicate any receiver can recognise.

Mechanism switches, for the mutation tests only (settings.LAB_LEDGER, from the environment; all on by default):
LAB_LEDGER_PROVIDER_CHECK=0 sends an uncertain job again without asking the provider; LAB_LEDGER_RETRIES=0 ends
a job `failed` on its first failed try; LAB_LEDGER_RECONCILER=0 makes every reconcile pass do nothing (no retry,
no recovery of a lost task or an expired lease); LAB_LEDGER_ON_COMMIT=0 enqueues inside the transaction, before
the row is committed (the request's and the reconciler's).
"""

from __future__ import annotations

import logging
import smtplib
import time
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
MIN_SEND_S = 0.5  # an attempt with less than this left before its deadline gives the claim back unsent
FENCE = 0.5  # an attempt's SMTP exchange ends within this share of its lease


class LeaseTooShort(Exception):
    """Too little of the attempt's deadline was left before the send could start (a slow claim, a slow provider
    check, a frozen process)."""


def refused(exc: BaseException) -> bool:
    """True only for a definite refusal: the SMTP server answered 4xx or 5xx, or refused the connection, so it did
    not take the message. A timeout or a dropped connection may come after the server took it: unknown outcome."""
    if isinstance(exc, (smtplib.SMTPRecipientsRefused, ConnectionRefusedError)):  # refused before any data
        return True
    return isinstance(exc, smtplib.SMTPResponseException) and 400 <= exc.smtp_code < 600


def permanent(exc: BaseException) -> bool:
    """True for a refusal no retry changes: a 5xx reply (550 no such user, 554 rejected), to the message or to every
    recipient."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return bool(exc.recipients) and all(500 <= code < 600 for code, _ in exc.recipients.values())
    return isinstance(exc, smtplib.SMTPResponseException) and 500 <= exc.smtp_code < 600


def retry_delay_s(attempt: int) -> float:
    """The delay before retry number `attempt` (1-based): retry_delay x backoff^(attempt-1), at most
    retry_max_delay_s."""
    grown = LEDGER["retry_delay_s"] * LEDGER["retry_backoff"] ** min(max(0, attempt - 1), 64)
    return min(grown, LEDGER["retry_max_delay_s"])


def deliver_job(job_id: str) -> dict:
    """Send one ledger job's email at most once per claim; a job already delivered, failed or claimed is left
    alone. Raises what made the attempt fail, after recording it in the job."""
    job = EmailJob.objects.filter(pk=job_id).first()
    if job is None or job.state != State.PENDING:
        return {"job_id": str(job_id), "state": job.state if job else "unknown", "skipped": True}
    attempt = job.attempts + 1
    mine = EmailJob.objects.filter(pk=job_id, state=State.SENDING, attempts=attempt)
    # The lease counts from before the claim's UPDATE (which may wait for the database's write lock), and so does
    # the deadline: it never lands after the lease.
    deadline = time.monotonic() + FENCE * LEDGER["lease_s"]
    lease_until = timezone.now() + timedelta(seconds=LEDGER["lease_s"])
    claimed = EmailJob.objects.filter(pk=job_id, state=State.PENDING, attempts=job.attempts).update(
        state=State.SENDING, attempts=attempt, lease_until=lease_until, next_attempt_at=None, updated_at=timezone.now())
    if not claimed:  # another task claimed it between our read and our update
        return {"job_id": str(job_id), "state": "claimed elsewhere", "skipped": True}

    def left_s() -> float:
        return deadline - time.monotonic()

    def end_attempt(exc: BaseException, **changes) -> None:
        """Release the claim after a failed try: `failed` on a permanent refusal, on the last try allowed or with
        retries off; else `pending`, its retry due after the backoff (the reconciler enqueues it then)."""
        now = timezone.now()
        error = repr(exc)[:1000]
        if permanent(exc) or attempt >= LEDGER["max_attempts"] or not LEDGER["retries"]:
            if mine.update(state=State.FAILED, lease_until=None, last_error=error, updated_at=now, **changes):
                log.warning("job %s failed for good after %s attempts: %s", job_id, attempt, error)
        else:
            mine.update(state=State.PENDING, lease_until=None, last_error=error, updated_at=now,
                        next_attempt_at=now + timedelta(seconds=retry_delay_s(attempt)), **changes)

    try:
        if left_s() < MIN_SEND_S:
            raise LeaseTooShort(f"{left_s():.2f} s left of the attempt's deadline after the claim")
        # A previous attempt ended without a definite answer: it may have got its 250. Ask the provider first.
        uncertain = (job.uncertain_attempts > job.confirmed_by_provider and settings.LAB_PROVIDER_STATUS_URL
                     and LEDGER["provider_check"])
        if uncertain and provider_accepted(job.message_id, timeout_s=min(PROVIDER_CHECK_MAX_S, left_s() / 3)):
            mine.update(state=State.DELIVERED, lease_until=None, delivered_at=timezone.now(),
                        confirmed_by_provider=F("confirmed_by_provider") + 1, updated_at=timezone.now())
            return {"job_id": str(job_id), "state": "delivered", "confirmed_by_provider": True}
        if left_s() < MIN_SEND_S:
            raise LeaseTooShort(f"{left_s():.2f} s left of the attempt's deadline before connecting")
    except Exception as exc:
        end_attempt(exc)  # nothing was sent, yet the try counts: a provider API that stays down ends in `failed`
        raise
    try:
        result = jobs.send_welcome_email(job.to, message_id=job.message_id, deadline=deadline)
    except Exception as exc:
        if refused(exc):  # the server did not take it
            end_attempt(exc)
        else:  # it may have taken it: the next attempt asks the provider before it sends
            end_attempt(exc, uncertain_attempts=F("uncertain_attempts") + 1)
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


def enqueue_logged(job_id) -> bool:
    """Enqueue the job's task; an enqueue that raises is logged and counted on the job (`enqueue_failures`), and a
    pending job is made due at once (`next_attempt_at`), so the reconciler's next pass enqueues it again. Returns
    whether the task was enqueued; never raises (after a commit, a 500 would make the client send a second job)."""
    try:
        enqueue_job(job_id)
    except Exception:
        log.exception("job %s: could not enqueue its task; the reconciler enqueues it again", job_id)
        try:
            job = EmailJob.objects.filter(pk=job_id)
            job.update(enqueue_failures=F("enqueue_failures") + 1)
            job.filter(state=State.PENDING, next_attempt_at__isnull=True).update(next_attempt_at=timezone.now())
        except Exception:
            log.exception("job %s: could not count its failed enqueue", job_id)
        return False
    return True


def after_commit(enqueue) -> None:
    """Run `enqueue` once the current transaction commits (with LAB_LEDGER_ON_COMMIT=0, at once: inside it)."""
    if LEDGER["on_commit"]:
        transaction.on_commit(enqueue)
    else:
        enqueue()


def accept_email(to: str, idempotency_key: str | None = None) -> EmailJob:
    """Record the job and enqueue its task once the transaction commits (enqueue_logged: a failed enqueue is
    logged and counted, never raised)."""
    job_id = uuid.uuid4()
    try:
        with transaction.atomic():
            job = EmailJob.objects.create(id=job_id, to=to, message_id=f"<{job_id.hex}@tasks-lab.test>",
                                          idempotency_key=idempotency_key or None)
            after_commit(lambda: enqueue_logged(job_id))
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
    """Enqueue again every job left behind, and every job whose retry is due, each once its row's change committed
    (a fast worker never reads the job as it was); returns how many of each kind it found and how many it could not
    enqueue (each logged and counted: one failing job does not stop the pass). Does nothing with the reconciler
    switched off (LAB_LEDGER_RECONCILER=0)."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=LEDGER["deadline_s"])
    counts = {"retry": 0, "pending": 0, "expired_lease": 0, "errors": 0}
    if not LEDGER["reconciler"]:
        return counts

    def enqueue_again(pk, kind: str, still_left_behind: Q, **changes) -> None:
        def enqueue() -> None:
            counts[kind if enqueue_logged(pk) else "errors"] += 1

        try:
            with transaction.atomic():
                if EmailJob.objects.filter(still_left_behind, pk=pk).update(updated_at=now, **changes):
                    after_commit(enqueue)
        except Exception:
            counts["errors"] += 1
            log.exception("reconcile: could not take job %s to enqueue it again", pk)

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
