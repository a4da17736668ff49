"""The job ledger: one row per accepted email, written in the transaction that answers the request.

Huey's SQLite queue deletes a task when a worker picks it up, so a task whose consumer dies is gone without a
trace (at-most-once). The ledger is the durable record of what was promised: a row is `pending` until a worker
claims it (`sending`, with a lease), then `delivered` once the SMTP server answered 250. Whatever dies, a row
that is not `delivered` is still there for the reconciler (labsite/ledger.py) to enqueue again.
"""

import uuid

from django.db import models


class EmailJob(models.Model):
    class State(models.TextChoices):
        PENDING = "pending"  # accepted; waiting in the queue, or between attempts
        SENDING = "sending"  # claimed by a worker until `lease_until`; its outcome is unknown until it reports
        DELIVERED = "delivered"  # the SMTP server answered 250
        FAILED = "failed"  # refused for good (5xx), or out of attempts: reported with last_error, never dropped

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    to = models.CharField(max_length=254)
    # Fixed when the job is accepted: every attempt sends the same Message-ID, so a second copy of the same job
    # is recognisable by anyone downstream (the lab's SMTP record counts duplicates by it).
    message_id = models.CharField(max_length=255, unique=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)  # claims, sent or not: LAB_LEDGER max_attempts caps them
    # Attempts started on a job whose previous attempt never reported (its worker died, its lease expired):
    # the previous one may or may not have reached the SMTP server, so these are the only possible duplicates.
    uncertain_attempts = models.PositiveIntegerField(default=0)
    # Of those, how many the provider's status API showed already accepted: marked delivered, not sent again.
    confirmed_by_provider = models.PositiveIntegerField(default=0)
    # times the reconciler put it back on the queue for a lost task or an expired lease (retries not counted)
    reenqueued = models.PositiveIntegerField(default=0)
    lease_until = models.DateTimeField(null=True, blank=True)
    # When the retry of a refused attempt is due: the reconciler enqueues the job then (and clears this), so a job
    # never has two retry chains.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # A worker finished a send after its lease had run out (the job may have been handed to another worker, which
    # may send it too): counted, never silent.
    lease_overruns = models.PositiveIntegerField(default=0)
    # Enqueues of this job that raised (after the request's commit, or in a reconciler pass): logged, and the
    # reconciler enqueues the job again after the deadline.
    enqueue_failures = models.PositiveIntegerField(default=0)
    # The client's Idempotency-Key header: a retried request answers with the job the first one created.
    idempotency_key = models.CharField(max_length=255, unique=True, null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["state", "updated_at"], name="emailjob_state_updated")]

    def __str__(self) -> str:
        return f"{self.id} {self.state} to {self.to}"


class Signup(models.Model):
    """A marker row written in the request's transaction (labsite/views/transactions.py): a task that looks for it
    tells whether it ran before that transaction committed, or despite its rollback."""

    email = models.CharField(max_length=254)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.email
