"""JSON answers for the lab's endpoints: every refusal is a 4xx with a JSON body, never an HTML page or a 500."""

import uuid
from functools import wraps

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.http import JsonResponse

MAX_EMAIL_LENGTH = 254  # RFC 5321 path limit


class BadRequest(Exception):
    """Raised by input parsing; becomes a JSON 4xx (400 unless a subclass says otherwise) with the message."""

    status = 400


def json_error(status: int, message: str, **extra) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def allow(*methods: str):
    """Like require_http_methods, but refuses with a JSON 405 and turns BadRequest into a JSON 400."""

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if request.method not in methods:
                response = json_error(405, f"method {request.method} not allowed", allowed=list(methods))
                response["Allow"] = ", ".join(methods)
                return response
            try:
                return view(request, *args, **kwargs)
            except BadRequest as exc:
                return json_error(exc.status, str(exc))

        return wrapper

    return decorator


def email_parameter(request, name: str = "to") -> str:
    """The recipient from a form-encoded POST body, validated."""
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
    return address


def uuid_parameter(value: str | None, what: str) -> str:
    """An id from a URL or query, in canonical form; anything that is not a UUID is a 400."""
    try:
        return str(uuid.UUID(value or ""))
    except ValueError as exc:
        raise BadRequest(f"{what} must be a UUID") from exc
