"""Django's ImmediateBackend through the Tasks API: the blocking baseline written as a deferred call.

`task.enqueue(...)` runs the task at once, inside the request, and returns its finished result: no queue, no
worker process, no server. The request waits for the SMTP exchange exactly as the blocking view does.
"""

from __future__ import annotations

from helpers.stack.queues import QueueBackend, register


@register
class DjangoTasksImmediate(QueueBackend):
    """Nothing is ever waiting: depth is 0 by construction. A web worker killed mid-send loses that email and
    nothing runs it again (at-most-once), but its client sees the request fail, unlike with a queue."""

    name = "djtasks_immediate"
    label = "Django Tasks, immediate"
    delivery = "at-most-once"
    worker_ready_line = ""  # no worker
    has_worker = False

    def worker_argv(self) -> None:
        return None

    def read_depth(self, conn) -> int:
        return 0

    @property
    def location(self) -> str:
        return "in the request (no queue)"
