"""uvicorn serving labsite.asgi on uvloop: async views run on each worker's event loop."""

from __future__ import annotations

import sys

from helpers.stack.processes import LOOPBACK
from helpers.stack.web import WebServer, register

STARTED = "Started server process ["  # what each uvicorn worker logs once it has loaded the site


@register
class Uvicorn(WebServer):
    """config.web_workers processes (with one, uvicorn serves in its own process); config.web_limit_concurrency
    caps each worker's open connections and tasks (503 beyond)."""

    server = "uvicorn"
    label = "uvicorn"
    application = "labsite.asgi:application"

    def argv(self, port: int) -> list:
        c = self.config
        limit = ["--limit-concurrency", c.web_limit_concurrency] if c.web_limit_concurrency else []
        return [sys.executable, "-m", "uvicorn", self.application, "--host", LOOPBACK, "--port", port,
                "--workers", c.web_workers, "--loop", "uvloop", "--lifespan", "off", "--timeout-graceful-shutdown",
                "5", "--no-access-log", "--log-level", "info", *limit]

    def workers_started(self, process, log_since: str) -> int:
        """Workers that logged they started: a spawned worker imports the site before it says so."""
        return log_since.count(STARTED)
