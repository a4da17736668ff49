"""What both gunicorn worker classes share: gunicorn serving labsite.wsgi, its workers forked from the master."""

from __future__ import annotations

import sys

from helpers.stack.processes import LOOPBACK
from helpers.stack.web import WebServer


class Gunicorn(WebServer):
    """gunicorn's master forks config.web_workers workers, each loading the site (no --preload)."""

    server = "gunicorn"
    application = "labsite.wsgi:application"

    def argv(self, port: int) -> list:
        return [sys.executable, "-m", "gunicorn", self.application, "--bind", f"{LOOPBACK}:{port}",
                "--workers", self.config.web_workers, "--worker-class", self.worker_class, *self.worker_options(),
                "--graceful-timeout", "5", "--timeout", "120", "--log-level", "warning",
                "--config", "python:labsite.gunicorn_conf"]

    def worker_options(self) -> list:
        return []

    def workers_started(self, process, log_since: str) -> int:
        """The master's live children: each is forked once the master has bound its socket."""
        return len(process.descendants())
