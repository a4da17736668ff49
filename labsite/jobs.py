"""The slow jobs, as plain functions: the blocking view calls them, the Huey tasks call the very same ones."""

import time
from email.utils import make_msgid

from django.core.mail import EmailMessage

WELCOME_SUBJECT = "Welcome to the lab"
WELCOME_BODY = "Thanks for signing up. This message was sent by the background-tasks lab.\n"


def send_welcome_email(to: str, message_id: str | None = None) -> dict:
    """Send one welcome email over the configured backend; returns what a caller may want to record.

    `message_id` lets a caller that may send the same email twice (the job ledger, after a crash) give every
    attempt the same Message-ID, so a duplicate is recognisable downstream; by default each send gets a new one."""
    message_id = message_id or make_msgid(domain="tasks-lab.test")
    message = EmailMessage(
        subject=WELCOME_SUBJECT,
        body=WELCOME_BODY,
        to=[to],
        headers={"Message-ID": message_id},
    )
    started = time.time()
    message.send(fail_silently=False)
    return {"to": to, "message_id": message_id, "sent_at": time.time(), "send_s": time.time() - started}


def do_nothing() -> None:
    """The empty job: what the queue itself costs per task (enqueue, pickup, bookkeeping)."""
