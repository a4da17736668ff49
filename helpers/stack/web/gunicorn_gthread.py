"""gunicorn with gthread workers: config.web_threads requests at a time per worker, connections kept alive."""

from __future__ import annotations

from helpers.stack.web import register
from helpers.stack.web.gunicorn_common import Gunicorn


@register
class GunicornThreaded(Gunicorn):
    worker_class = "gthread"
    label = "gunicorn gthread"

    def worker_options(self) -> list:
        return ["--threads", self.config.web_threads]
