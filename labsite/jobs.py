"""The slow jobs, as plain functions: the blocking view calls them, the Huey tasks call the very same ones.

The welcome email is built in one place (`welcome_message`) and sent two ways: `send_welcome_email` through Django's
configured mailer (a blocking smtplib exchange: the calling thread waits), `send_welcome_email_async` over aiosmtplib
to the same SMTP server (a coroutine: only the request waits, no thread does)."""

import smtplib
import socket
import time
from email.utils import make_msgid

import aiosmtplib
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import EmailMessage, mailers
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend
from django.core.mail.utils import DNS_NAME

from labsite import models

WELCOME_SUBJECT = "Welcome to the lab"
WELCOME_BODY = "Thanks for signing up. This message was sent by the background-tasks lab.\n"


def welcome_message(to: str, message_id: str | None = None) -> EmailMessage:
    """The welcome email to `to`. `message_id` lets a caller that may send the same email twice (the job ledger,
    after a crash) give every attempt the same Message-ID, so a duplicate is recognisable downstream; by default
    each message gets a new one."""
    return EmailMessage(
        subject=WELCOME_SUBJECT,
        body=WELCOME_BODY,
        to=[to],
        headers={"Message-ID": message_id or make_msgid(domain="tasks-lab.test")},
    )


def _sent(message: EmailMessage, started: float) -> dict:
    """What a caller may want to record of a message the SMTP server accepted."""
    return {"to": message.to[0], "message_id": message.extra_headers["Message-ID"], "sent_at": time.time(),
            "send_s": time.time() - started}


def send_welcome_email(to: str, message_id: str | None = None, deadline: float | None = None) -> dict:
    """Send one welcome email over the configured mailer; returns what a caller may want to record. `deadline` (a
    time.monotonic() value) ends the whole SMTP exchange by then (send_by: the job ledger fences its lease)."""
    message = welcome_message(to, message_id)
    started = time.time()
    if deadline is None:
        message.send(fail_silently=False)
    else:
        send_by(message, deadline)
    return _sent(message, started)


class DeadlinePassed(TimeoutError):
    """The exchange's deadline passed: no further byte is sent or awaited."""


class DeadlineSocket(socket.socket):
    """A socket whose every send and receive ends by `deadline` (time.monotonic()): each gets what is left as its
    timeout, and none starts once nothing is left."""

    deadline = float("inf")

    def _arm(self) -> None:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DeadlinePassed("the SMTP exchange's deadline passed")
        self.settimeout(left)

    def recv(self, *args):
        self._arm()
        return super().recv(*args)

    def recv_into(self, *args):  # what makefile() readers call
        self._arm()
        return super().recv_into(*args)

    def send(self, *args):
        self._arm()
        return super().send(*args)

    def sendall(self, *args):  # its timeout bounds the whole call
        self._arm()
        return super().sendall(*args)


class DeadlineSMTP(smtplib.SMTP):
    """smtplib.SMTP over a DeadlineSocket: connect, greeting, EHLO, MAIL, RCPT, DATA and QUIT all end by
    `deadline`, not each within a timeout of its own."""

    def __init__(self, host: str, port: int, deadline: float, **kwargs):
        self.deadline = deadline
        super().__init__(host, port, **kwargs)

    def _get_socket(self, host, port, timeout):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DeadlinePassed("the SMTP exchange's deadline passed before connecting")
        plain = socket.create_connection((host, port), left, self.source_address)
        fenced = DeadlineSocket(plain.family, plain.type, plain.proto, fileno=plain.detach())
        fenced.deadline = self.deadline
        fenced.settimeout(left)
        return fenced


def send_by(message: EmailMessage, deadline: float) -> None:
    """Send `message` over the default mailer, the whole exchange (connect to QUIT) ending by `deadline`
    (time.monotonic()). A mailer that speaks no network (locmem, console) sends as usual; an SMTP one must be plain
    SMTP (TLS would wrap the fenced socket in one that is not)."""
    backend = mailers.default
    if not isinstance(backend, SMTPBackend):
        backend.send_messages([message])
        return
    if backend.use_ssl or backend.use_tls:
        raise ImproperlyConfigured("a deadline fences plain SMTP only")
    # open() leaves a connection already set alone, and send_messages() then does not close it: close() below does
    # (a QUIT past the deadline only closes the socket: the message was sent or refused already).
    backend.connection = DeadlineSMTP(backend.host, backend.port, deadline, local_hostname=DNS_NAME.get_fqdn())
    try:
        if backend.username and backend.password:
            backend.connection.login(backend.username, backend.password)
        backend.send_messages([message])
    finally:
        backend.close()


async def send_welcome_email_async(to: str, message_id: str | None = None) -> dict:
    """The same message over aiosmtplib, to the host, port and timeout of the default mailer's SMTP options, with the
    EHLO name Django's SMTP backend uses. Django has no async mail backend: this speaks SMTP itself. An SMTP error
    is raised as aiosmtplib's SMTPException, as the blocking send raises smtplib's."""
    message = welcome_message(to, message_id)
    options = settings.MAILERS["default"]["OPTIONS"]
    started = time.time()
    await aiosmtplib.send(message.message(), sender=message.from_email, recipients=message.recipients(),
                          hostname=options["host"], port=options["port"], timeout=options["timeout"],
                          local_hostname=DNS_NAME.get_fqdn(), use_tls=False, start_tls=False)
    return _sent(message, started)


def do_nothing() -> None:
    """The empty job: what the queue itself costs per task (enqueue, pickup, bookkeeping)."""


# The transaction experiments (labsite/views/transactions.py): the task looks for the Signup row the request wrote
# in its transaction and says in the email's subject what it saw and when it started, so the SMTP server's record
# shows from outside whether a task ran before the commit.
SIGNUP_SUBJECT = "Welcome: signup row {seen} when the task started at {started_at:.6f}"


def check_signup(to: str, signup_id: int) -> dict:
    """Look for the Signup row, then send the welcome email with a subject saying whether it was there."""
    started_at = time.time()
    seen = "visible" if models.Signup.objects.filter(pk=signup_id).exists() else "missing"
    message = welcome_message(to)
    message.subject = SIGNUP_SUBJECT.format(seen=seen, started_at=started_at)
    message.send(fail_silently=False)
    return {"to": to, "row": seen, "started_at": started_at}
