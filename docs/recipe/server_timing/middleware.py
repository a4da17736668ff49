"""Server-Timing spans for the time a request spends sending email and calling other HTTP services.

Copy this file into your project and put its middleware first in MIDDLEWARE:

    MIDDLEWARE = ["yourproject.server_timing.ServerTimingSpans", ...]

Each response then carries, beside any Server-Timing it already has, a span for each kind of blocking work the
request did: `mail;dur=301.2;desc="1 send"` for the time inside django.core.mail sends (every backend's
send_messages, so send_mail, EmailMessage.send and mailers alike) and `http;dur=85.0;desc="2 calls"` for outgoing
HTTP made with the standard library (http.client, which urllib.request uses). The browser's DevTools show them in a
request's Timing tab; `notebooks/10-your-own-site.ipynb` reads them to say where a slow endpoint's time went.

How: on first use it wraps three http.client methods and, for each email backend class when it is first
instantiated, its send_messages (a backend must call BaseEmailBackend.__init__, as Django asks). The wrappers only
add time while a request is being served in the same thread or task; elsewhere they cost one context lookup. An email
backend that speaks HTTP counts in both spans. Libraries that bypass http.client's request() (urllib3 2, hence
requests and httpx) are not counted in `http`. Plain Django, no dependency; sync and async views.
"""

import functools
import http.client
import time
from contextvars import ContextVar

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.core.mail.backends.base import BaseEmailBackend

SPANS = {"mail": "send", "http": "call"}  # span name -> what one counted call is
_spans: ContextVar[dict | None] = ContextVar("server_timing_spans", default=None)
_inside: ContextVar[frozenset] = ContextVar("server_timing_inside", default=frozenset())


def timed(span: str, function, counts: bool = True):
    """`function`, adding its duration to `span` of the request being served (once, however deeply it nests)."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        spans, inside = _spans.get(), _inside.get()
        if spans is None or span in inside:
            return function(*args, **kwargs)
        token = _inside.set(inside | {span})
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            total, count = spans.get(span, (0.0, 0))
            spans[span] = (total + time.perf_counter() - started, count + counts)
            _inside.reset(token)

    wrapper.server_timing = True
    return wrapper


def _install() -> None:
    """Wrap once per process: outgoing HTTP now, each email backend class when it is first instantiated."""
    if getattr(BaseEmailBackend.__init__, "server_timing", False):
        return
    http.client.HTTPConnection.request = timed("http", http.client.HTTPConnection.request, counts=False)
    http.client.HTTPConnection.getresponse = timed("http", http.client.HTTPConnection.getresponse)
    http.client.HTTPResponse.read = timed("http", http.client.HTTPResponse.read, counts=False)
    original_init = BaseEmailBackend.__init__

    @functools.wraps(original_init)
    def init(self, *args, **kwargs):
        backend = type(self)
        if not getattr(backend.send_messages, "server_timing", False):
            backend.send_messages = timed("mail", backend.send_messages)
        original_init(self, *args, **kwargs)

    init.server_timing = True
    BaseEmailBackend.__init__ = init


def header(spans: dict) -> str:
    return ", ".join(f'{name};dur={seconds * 1e3:.1f};desc="{count} {SPANS[name]}{"" if count == 1 else "s"}"'
                     for name, (seconds, count) in spans.items())


class ServerTimingSpans:
    """Adds a Server-Timing span for each kind of blocking work the request did (mail, http)."""

    sync_capable = async_capable = True

    def __init__(self, get_response):
        _install()
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        token = _spans.set({})
        try:
            return self.add(self.get_response(request), _spans.get())
        finally:
            _spans.reset(token)

    async def __acall__(self, request):
        token = _spans.set({})
        try:
            return self.add(await self.get_response(request), _spans.get())
        finally:
            _spans.reset(token)

    @staticmethod
    def add(response, spans: dict):
        if spans:
            response["Server-Timing"] = ", ".join(filter(None, [response.get("Server-Timing"), header(spans)]))
        return response
