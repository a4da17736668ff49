"""Web servers for the site: one small class per server, the same methods for each, as the queue backends
(helpers.stack.queues). The lab starts `lab.web`, the one LabConfig's web_server and web_worker_class name, and
never branches on a server's name.

A new server is one module here (a subclass of WebServer, registered with @register).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from helpers.stack.lab import LabConfig
    from helpers.stack.processes import ManagedProcess

SERVERS: dict[tuple[str, str | None], type[WebServer]] = {}


def register(cls: type[WebServer]) -> type[WebServer]:
    SERVERS[(cls.server, cls.worker_class)] = cls
    return cls


def _import_all() -> None:
    """Every module of this package registers its server when imported."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


def server_names() -> list[str]:
    """LabConfig.web_server's values."""
    _import_all()
    return sorted({server for server, _ in SERVERS})


def web_server_class(server: str, worker_class: str) -> type[WebServer]:
    """The class for LabConfig's `web_server` and `web_worker_class` (a server without worker classes ignores it)."""
    _import_all()
    found = SERVERS.get((server, worker_class)) or SERVERS.get((server, None))
    if found is None:
        choices = ", ".join(f"{s} ({w})" if w else s for s, w in sorted(SERVERS, key=str))
        raise ValueError(f"web_server={server!r} with web_worker_class={worker_class!r} is not a server of "
                         f"helpers.stack.web; choose from {choices}")
    return found


class WebServer:
    """What the lab needs to know of one web server: its command line on a loopback port, and how many of its
    worker processes have loaded the site since it started."""

    server: ClassVar[str]  # LabConfig.web_server
    worker_class: ClassVar[str | None] = None  # LabConfig.web_worker_class; None: the server has no such choice
    label: ClassVar[str]  # for tables and charts
    application: ClassVar[str]  # the site's entry point it serves

    def __init__(self, config: LabConfig):
        self.config = config

    def argv(self, port: int) -> list:
        """The command line serving the site on 127.0.0.1:`port` with config.web_workers worker processes."""
        raise NotImplementedError

    def workers_started(self, process: ManagedProcess, log_since: str) -> int:
        """Worker processes of `process` that have loaded the site; `log_since` is what its log has said since
        this start (a restarted server appends to the same log)."""
        raise NotImplementedError

    def describe(self) -> dict[str, object]:
        return {"server": self.server, "worker_class": self.worker_class, "label": self.label,
                "application": self.application}
