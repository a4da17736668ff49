"""gunicorn with sync workers: one request at a time per worker, and every connection closed after its answer."""

from __future__ import annotations

from helpers.stack.web import register
from helpers.stack.web.gunicorn_common import Gunicorn


@register
class GunicornSync(Gunicorn):
    worker_class = "sync"
    label = "gunicorn sync"
