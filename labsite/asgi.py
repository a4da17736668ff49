"""The site as an ASGI application, for uvicorn (helpers.stack.lab, LabConfig.web_server="uvicorn"): async views run
on the worker's event loop, sync views in a thread each (Django's sync_to_async, thread-sensitive).

Django's ASGI handler reads the whole body into a temporary file (on disk past FILE_UPLOAD_MAX_MEMORY_SIZE) before
any view runs, so a view's own size check comes after the bytes are stored, and a chunked body has no limit at all.
`SizeLimits` refuses first, as gunicorn's parser does for the WSGI site: header fields past gunicorn's limits
(431), a declared Content-Length over the path's body limit (413, before a byte of the body is read), and a body
that grows past it while it arrives (chunked, or longer than declared): cut there, 413, and what was stored of it
removed with Django's temporary file."""

import json
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labsite.settings")
django_application = get_asgi_application()

from django.conf import settings  # noqa: E402 (after Django is set up)
from django.urls import Resolver404, resolve  # noqa: E402

# gunicorn's defaults (limit_request_field_size, limit_request_fields), so both servers refuse the same headers.
MAX_HEADER_FIELD_BYTES = 8190
MAX_HEADER_FIELDS = 100


def body_limit(path: str) -> int:
    """The most bytes a request body to `path` may have: what its view declares (labsite.views.common.max_body),
    else Django's cap on a form body (DATA_UPLOAD_MAX_MEMORY_SIZE)."""
    try:
        view = resolve(path).func
    except Resolver404:
        view = None
    limit = getattr(view, "max_body_bytes", None)
    return limit() if limit else settings.DATA_UPLOAD_MAX_MEMORY_SIZE


async def refuse(send, status: int, message: str) -> None:
    """A JSON 4xx, the shape of every refusal of the site (labsite.views.common.json_error)."""
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class SizeLimits:
    """ASGI middleware: header and body size limits applied before the body reaches Django (see the module)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = scope["headers"]
        if len(headers) > MAX_HEADER_FIELDS or any(len(k) + len(v) + 2 > MAX_HEADER_FIELD_BYTES for k, v in headers):
            return await refuse(send, 431, f"request header fields too large: at most {MAX_HEADER_FIELDS} fields "
                                           f"of {MAX_HEADER_FIELD_BYTES} bytes each")
        limit = body_limit(scope["path"])
        declared = [v for k, v in headers if k == b"content-length"]
        if declared and declared[0].isdigit() and int(declared[0]) > limit:
            return await refuse(send, 413, f"request body of {int(declared[0])} bytes is over the {limit}-byte limit")
        received, cut, started = 0, False, False

        async def limited_receive():
            nonlocal received, cut
            if cut:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:  # Django's handler takes a disconnect as the end: it drops the body file
                    cut = True
                    return {"type": "http.disconnect"}
            return message

        async def watched_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, limited_receive, watched_send)
        if cut and not started:
            await refuse(send, 413, f"request body over the {limit}-byte limit")


application = SizeLimits(django_application)
