import smtplib
import time
from contextlib import closing
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.core.mail import EmailMessage, mailers
from django.db import transaction
from django.db.models import F
from django.tasks import task
from django.utils import timezone

from .models import EmailJob

LEASE = timedelta(seconds=getattr(settings, "OUTBOX_LEASE_S", 120))
RETRY_S, RETRY_CAP_S, MAX_ATTEMPTS = getattr(settings, "OUTBOX_RETRY", (30, 3600, 8))


class FencedSMTP(smtplib.SMTP):
    """Each command and reply may wait only what is left before `deadline`: the whole exchange ends by then."""
    def __init__(self, host, port, deadline):
        self.deadline = deadline
        super().__init__(host, port, timeout=deadline - time.monotonic())

    def send(self, s):
        self.sock.settimeout(max(self.deadline - time.monotonic(), 1e-3))  # none left: times out at once
        super().send(s)

    def getreply(self):
        self.sock.settimeout(max(self.deadline - time.monotonic(), 1e-3))
        return super().getreply()


@task()
def send_email(job_id):
    """Claim the job for a lease and send it within half the lease; a job not pending is left alone."""
    deadline, now = time.monotonic() + LEASE.total_seconds() / 2, timezone.now()
    if not EmailJob.objects.filter(pk=job_id, state=EmailJob.PENDING).update(
            state=EmailJob.SENDING, attempts=F("attempts") + 1, due_at=now + LEASE):
        return "not pending"  # sent, failed, or claimed by another worker
    job, mailer = EmailJob.objects.get(pk=job_id), mailers.default  # a mailer of its own
    mine = EmailJob.objects.filter(pk=job_id, attempts=job.attempts)  # unless a later claim took over
    try:
        with closing(FencedSMTP(mailer.host, mailer.port, deadline)) as mailer.connection:  # no QUIT needed
            if mailer.use_tls:
                mailer.connection.starttls()
            if mailer.username:
                mailer.connection.login(mailer.username, mailer.password)
            mailer.send_messages([EmailMessage("Welcome", "Thanks for signing up.", to=[job.to],
                                               headers={"Message-ID": job.message_id})])
    except Exception as exc:
        codes = [code for code, _ in getattr(exc, "recipients", {}).values()] or [getattr(exc, "smtp_code", 0)]
        if 500 <= min(codes) < 600 or job.attempts >= MAX_ATTEMPTS:  # 550 no such user: no retry changes that
            mine.update(state=EmailJob.FAILED, last_error=repr(exc))
        else:  # 4xx, refused, timed out: the reconciler enqueues it again after a capped backoff
            backoff = timedelta(seconds=min(RETRY_S * 2 ** (job.attempts - 1), RETRY_CAP_S))
            mine.update(state=EmailJob.PENDING, due_at=timezone.now() + backoff, last_error=repr(exc))
        raise
    mine.update(state=EmailJob.SENT)


def reconcile():
    """Enqueue again each job whose retry is due or whose task was lost (left pending, its lease expired)."""
    now = timezone.now()
    left_behind = EmailJob.objects.filter(state__in=[EmailJob.PENDING, EmailJob.SENDING], due_at__lte=now)
    left_behind.filter(attempts__gte=MAX_ATTEMPTS).update(state=EmailJob.FAILED, last_error="lease expired")
    for pk, due_at in left_behind.values_list("pk", "due_at"):
        with transaction.atomic():
            if left_behind.filter(pk=pk, due_at=due_at).update(state=EmailJob.PENDING, due_at=now + LEASE):
                transaction.on_commit(partial(send_email.enqueue, pk), robust=True)
