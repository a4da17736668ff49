"""What every endpoint shares: parsing the request, refusing with a JSON 4xx (never an HTML page or a 500), and
the answers of a path that ran its job (200) or queued it (202)."""

import math
import uuid
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING

import idna
from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend
from django.core.validators import validate_email
from django.http import JsonResponse
from django.urls import reverse

if TYPE_CHECKING:
    from labsite.dispatch import QueueAPI

MAX_EMAIL_LENGTH = 254  # RFC 5321 path limit
# Django's SMTP backend prepares every recipient with prep_address, which refuses (ValueError, outside the send's
# error handling: a 500, a task that can never succeed) some addresses validate_email accepts, so the request
# applies the same rule. Never opened: only its prep_address is used.
SMTP_RULES = SMTPBackend(alias="address-check", host="localhost")


class Refused(Exception):
    """Raised anywhere below a view wrapped by `allow`, which answers `response()` instead of a 500."""

    status = 400

    def response(self) -> JsonResponse:
        return json_error(self.status, str(self))


class BadRequest(Refused):
    """Raised by input parsing; becomes a JSON 4xx (400 unless a subclass says otherwise) with the message."""


def json_error(status: int, message: str, **extra) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def allow(*methods: str):
    """Like require_http_methods, but refuses with a JSON 405, and answers a Refused (BadRequest...) as it says.
    Wraps a sync view or an async one (then the wrapper is async too, so Django runs it on the event loop)."""

    def wrong_method(request) -> JsonResponse | None:
        if request.method in methods:
            return None
        response = json_error(405, f"method {request.method} not allowed", allowed=list(methods))
        response["Allow"] = ", ".join(methods)
        return response

    def decorator(view):
        if iscoroutinefunction(view):
            @wraps(view)
            async def async_wrapper(request, *args, **kwargs):
                try:
                    return wrong_method(request) or await view(request, *args, **kwargs)
                except Refused as exc:
                    return exc.response()

            return async_wrapper

        @wraps(view)
        def wrapper(request, *args, **kwargs):
            try:
                return wrong_method(request) or view(request, *args, **kwargs)
            except Refused as exc:
                return exc.response()

        return wrapper

    return decorator


def max_body(limit: Callable[[], int]):
    """Marks a view whose request body may be up to `limit()` bytes, more than Django's cap on a form body: under
    uvicorn labsite.asgi refuses a larger one before it is stored."""

    def decorator(view):
        view.max_body_bytes = limit
        return view

    return decorator


def email_parameter(request, name: str = "to") -> str:
    """The recipient from a form-encoded POST body, as the site will send it, refused here unless every path can.

    One rule, applied before anything is sent or enqueued, so every path (blocking smtplib, the queues, the ledger,
    Django's Tasks, the async aiosmtplib send) gets the same address or the same 400: the site sends no SMTPUTF8,
    so the part before the @ must be ASCII; an internationalized domain is accepted and sent as its ASCII form
    (IDNA 2008 with the UTS 46 mapping, what browsers use: "bücher.example" -> "xn--bcher-kva.example"). Without
    this, smtplib would send such a domain punycoded while aiosmtplib, to a server without SMTPUTF8, would refuse
    it after the view had accepted the request (a 500)."""
    values = request.POST.getlist(name)
    if len(values) != 1:
        raise BadRequest(f"exactly one '{name}' parameter is required")
    address = values[0].strip()
    if len(address) > MAX_EMAIL_LENGTH:
        raise BadRequest(f"'{name}' is longer than {MAX_EMAIL_LENGTH} characters")
    try:
        validate_email(address)
    except ValidationError as exc:
        raise BadRequest(f"'{name}' is not a valid email address") from exc
    if any(ch in address for ch in "\r\n"):
        raise BadRequest(f"'{name}' must not contain line breaks")
    local, _, domain = address.rpartition("@")
    if not local.isascii():
        # validate_email lets some through: it matches [A-Z] case-insensitively, so the Kelvin sign "\u212a" passes.
        raise BadRequest(f"'{name}' cannot be sent over SMTP: the part before the @ must be printable ASCII")
    if not domain.isascii():
        try:
            domain = idna.encode(domain, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise BadRequest(f"'{name}' has a domain that is not a valid internationalized domain name") from exc
        address = f"{local}@{domain}"
        if len(address) > MAX_EMAIL_LENGTH:
            raise BadRequest(f"'{name}' is longer than {MAX_EMAIL_LENGTH} characters in its ASCII form")
    if address.startswith('"'):
        # Only a quoted local part can pass validate_email and fail prep_address now (a control character in it).
        # Its header parser costs about 90 µs, a tenth of the deferred view, so a plain address skips it.
        try:
            SMTP_RULES.prep_address(address)
        except ValueError as exc:
            message = f"'{name}' cannot be sent over SMTP: the part before the @ must be printable ASCII"
            raise BadRequest(message) from exc
    return address


def uuid_parameter(value: str | None, what: str) -> str:
    """An id from a URL or query, in canonical form; anything that is not a UUID is a 400."""
    try:
        return str(uuid.UUID(value or ""))
    except ValueError as exc:
        raise BadRequest(f"{what} must be a UUID") from exc


def delivered(result, **extra) -> JsonResponse:
    """200: the job ran inside the request and this is what it returned."""
    return JsonResponse({"state": "delivered", "result": result, **extra})


def accepted(body: dict, location: str) -> JsonResponse:
    """202: the work is queued, not done; Location is where its state can be followed."""
    response = JsonResponse(body, status=202)
    response["Location"] = location
    return response


def queued(task_id: str, status_view: str = "task-status") -> JsonResponse:
    """The 202 of a queued task, followed at `status_view` (a URL name taking the id)."""
    return accepted({"state": "queued", "task_id": task_id}, reverse(status_view, args=[task_id]))


class QueueFull(Refused):
    """503 + Retry-After: the bounded backlog sheds the request instead of letting the queue grow without limit."""

    status = 503

    def __init__(self, depth: int, limit: int):
        super().__init__("the queue is full; try again later")
        self.depth, self.limit = depth, limit
        self.retry_after_s = max(1, math.ceil(settings.LAB_RETRY_AFTER_S))

    def response(self) -> JsonResponse:
        response = json_error(self.status, str(self), backlog=self.depth, limit=self.limit,
                              retry_after_s=self.retry_after_s)
        response["Retry-After"] = str(self.retry_after_s)
        return response


def shed_when_backlogged() -> None:
    """Raises QueueFull once LAB_MAX_BACKLOG tasks wait in the chosen queue. Unset (0), this costs nothing: the
    queue is not counted."""
    from labsite import dispatch  # here: labsite.dispatch loads the jobs, which refuse input with BadRequest

    limit = settings.LAB_MAX_BACKLOG
    if limit and (depth := dispatch.backlog()) >= limit:
        raise QueueFull(depth, limit)


def task_id_parameter(value: str | None, api: "QueueAPI") -> str:
    """A task id from a URL or query, as `api` spells its ids; anything else is a 400."""
    task_id = api.task_id(value)
    if task_id is None:
        raise BadRequest(f"task id must be {api.id_rule}")
    return task_id
