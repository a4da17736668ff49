import uuid

from django.core.mail.utils import DNS_NAME
from django.db import models


def new_message_id():
    return f"<{uuid.uuid4().hex}@{DNS_NAME}>"


class EmailJob(models.Model):
    """One promised email, written in the transaction that answers the request."""
    PENDING, SENDING, SENT, FAILED = "pending", "sending", "sent", "failed"
    key = models.CharField(max_length=255, unique=True)  # the client's Idempotency-Key
    to = models.EmailField()
    message_id = models.CharField(max_length=255, unique=True, default=new_message_id)  # every attempt sends it
    state = models.CharField(max_length=7, default=PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)  # claims, sent or not
    due_at = models.DateTimeField()  # pending: when the reconciler enqueues it again; sending: the lease's end
    last_error = models.TextField(blank=True)
