"""Server-Timing for every response: `app` (the whole request inside Django) and the spans the site timed while
serving it (labsite.dispatch times each enqueue as `enqueue`)."""

import time
from contextvars import ContextVar

# The request being served's spans: name -> seconds, summed over the blocks timed; None outside a request.
_spans: ContextVar[dict[str, float] | None] = ContextVar("labsite_server_timing_spans", default=None)


class span:
    """Adds the time its block takes to the Server-Timing span `name` of the request being served (nothing outside a
    request: a worker, a management command)."""

    __slots__ = ("name", "started")

    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        self.started = time.perf_counter()

    def __exit__(self, *exc_info):
        elapsed = time.perf_counter() - self.started
        spans = _spans.get()
        if spans is not None:
            spans[self.name] = spans.get(self.name, 0.0) + elapsed


class ServerTimingMiddleware:
    """Adds `Server-Timing: app;dur=…` so a client can split server time from network time, followed by the spans
    timed inside the request (`enqueue;dur=…` where the request enqueued a task), in milliseconds."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        spans: dict[str, float] = {}
        token = _spans.set(spans)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            _spans.reset(token)
        response["Server-Timing"] = ", ".join([f"app;dur={elapsed_ms:.3f}",
                                               *(f"{name};dur={s * 1000:.3f}" for name, s in spans.items())])
        return response
