"""Queue backends: one small class per backend, the same methods for each, the way Huey's storages share
`enqueue / dequeue / queue_size`. The lab (helpers.stack.lab) and every experiment, probe and notebook talk to
`lab.queue`, an instance of one of these, and never branch on a backend's name.

A new backend is one module here (a subclass of QueueBackend, registered with @register) plus its entry in
labsite/settings.py's QUEUE_BACKENDS table; the servers it needs are helpers.stack modules of their own (Redis,
PostgreSQL, RabbitMQ), each mixed in through a Uses* class.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, ClassVar

from helpers.stack.site_database import SiteDatabase, SqliteFile

if TYPE_CHECKING:
    from helpers.stack.lab import Lab

BACKENDS: dict[str, type[QueueBackend]] = {}


def register(cls: type[QueueBackend]) -> type[QueueBackend]:
    BACKENDS[cls.name] = cls
    return cls


def backend_class(name: str) -> type[QueueBackend]:
    _import_all()
    if name not in BACKENDS:
        raise ValueError(f"unknown queue backend {name!r}; choose from {', '.join(sorted(BACKENDS))}")
    return BACKENDS[name]


def names() -> list[str]:
    """The backends notebook 07's matrix measures (helpers.experiments.which_queue)."""
    return [name for name in all_names() if BACKENDS[name].in_matrix]


def all_names() -> list[str]:
    """Every backend: those the matrix measures and those it does not cover yet (each served by the site, tested by
    tests/test_site_every_backend.py)."""
    _import_all()
    return list(BACKENDS)


def pairs() -> list[str]:
    """Every backend with workers, at its default settings (in all_names() order), then the production twins (the
    settings its own docs recommend for not losing tasks; each names its default in `production_of`): notebook 09's
    matrix (helpers.experiments.which_setup)."""
    with_workers = [name for name in all_names() if BACKENDS[name].has_worker]
    return ([name for name in with_workers if BACKENDS[name].setting == "default"]
            + [name for name in with_workers if BACKENDS[name].setting == "production"])


def _import_all() -> None:
    """Every module of this package registers its backend when imported."""
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


AT_LEAST_ONCE = "at-least-once"
AT_LEAST_ONCE_AFTER_THE_POP = "at-least-once after the pop"


class QueueBackend:
    """What the lab needs to know of one queue: the servers it runs, the environment the site and its workers
    get, the worker's command line, how deep the queue is, how a worker dies, and what delivery it promises."""

    name: ClassVar[str]  # the LAB_QUEUE_BACKEND value, and the prefix of its figures (<name>_drain_per_s)
    label: ClassVar[str]  # for tables and charts
    # The guarantee its mechanism gives when a worker dies mid-task: "at-most-once", AT_LEAST_ONCE, or
    # AT_LEAST_ONCE_AFTER_THE_POP (a kill between taking the task off the queue and recording it as unacknowledged
    # loses it; after that it comes back, maybe twice)
    delivery: ClassVar[str]
    servers: ClassVar[tuple[str, ...]] = ()  # servers the lab starts for it, besides the site and the SMTP server
    blocking_pickup: ClassVar[bool] = False  # an idle worker waits in a blocking pop (no polling interval)
    worker_ready_line: ClassVar[str]  # what a worker process logs once it takes tasks
    worker_stop_signal: ClassVar[int] = signal.SIGTERM  # its graceful shutdown: running tasks finish
    # LabConfig changes that make an idle worker look for work sooner (its tuning knob, for start_consumer); empty:
    # nothing to tune (a blocking pop, no worker)
    tuned_worker_config: ClassVar[dict[str, object]] = {}
    # How long the queue takes to hand a killed worker's task to another worker; None: it never does
    redelivery_after_s: ClassVar[float | None] = None
    # The task is a row of the site's own database, written in the request's transaction: it commits or rolls back
    # with the request's writes
    enqueue_in_transaction: ClassVar[bool] = False
    # The library itself holds the enqueue until the request's transaction commits (a rolled-back task is never
    # enqueued), without the task being a row of that transaction
    enqueue_on_commit: ClassVar[bool] = False
    # Notebook 07's matrix measures it (names()); False for a backend the matrix does not cover yet (all_names())
    in_matrix: ClassVar[bool] = True
    # It runs its tasks in worker processes (worker_argv() is not None); False: inside the request, no worker
    has_worker: ClassVar[bool] = True
    # "default": the library's own defaults; "production": the settings its docs recommend for not losing tasks, a
    # twin of the default backend `production_of` names (same servers, other settings)
    setting: ClassVar[str] = "default"
    production_of: ClassVar[str | None] = None
    # What a production twin changes, each (the setting as text, the URL of the doc that recommends it)
    recommended_by: ClassVar[tuple[tuple[str, str], ...]] = ()

    def __init__(self, lab: Lab):
        self.lab = lab

    # -- the servers it needs: started before the site migrates, stopped after the workers ----------------------

    def start_servers(self) -> None:
        """Start the servers this queue needs (none for an embedded queue)."""

    def stop_servers(self) -> None:
        """Stop them; a stopped server keeps its data in the run folder."""

    def begin_servers(self) -> None:
        """Start the servers, returning before they are ready if the site's migrations do not need them (the lab
        migrates, then calls servers_ready()); by default start_servers(), which waits."""
        self.start_servers()

    def servers_ready(self) -> None:
        """Wait until the servers begin_servers() started take clients."""

    # -- the site and its workers ---------------------------------------------------------------------------------

    def site_env(self) -> dict[str, str]:
        """Environment variables for every Django process of the site (web, workers, helpers)."""
        return {"LAB_QUEUE_BACKEND": self.name}

    def site_database(self) -> SiteDatabase:
        """The database the site's settings give Django with this backend: the run folder's SQLite file, unless
        the backend moves it (to its PostgreSQL server)."""
        return SqliteFile(self.lab.run_dir)

    def worker_argv(self) -> list[str] | None:
        """The command line of one worker process; None when the backend has no worker (its tasks run inside the
        request): the lab then starts no consumer."""
        raise NotImplementedError

    # -- what is in the queue -------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def connection(self):
        """An open client of the queue's store (a SQLite connection, a Redis client, ...) for the readers below;
        None for a backend with no store."""
        yield None

    def read_depth(self, conn) -> int:
        """Tasks waiting to be picked up, read over `conn`."""
        raise NotImplementedError

    def read_scheduled(self, conn) -> int:
        """Tasks held for later (retries waiting out their delay), read over `conn`."""
        return 0

    @contextlib.contextmanager
    def depth_reader(self) -> Iterator[Callable[[], int]]:
        """A function that reads the number of tasks waiting, over one open connection (for fast sampling)."""
        with self.connection() as conn:
            yield lambda: self.read_depth(conn)

    def depth(self) -> int:
        with self.depth_reader() as read:
            return read()

    def scheduled(self) -> int:
        with self.connection() as conn:
            return self.read_scheduled(conn)

    def counts(self) -> dict[str, int | None]:
        """Pending and scheduled tasks; running is None where the queue does not know (the task lives only in the
        worker's memory once picked up)."""
        return {"pending": self.depth(), "scheduled": self.scheduled(), "running": None}

    def server_commands(self) -> int | None:
        """Commands the queue's server has run since it started (round trips per task), None without a server."""
        return None

    @property
    def location(self) -> str:
        """Where the queue lives, for a reader of the notebook (no password)."""
        raise NotImplementedError

    # -- faults ---------------------------------------------------------------------------------------------------

    def kill_workers(self) -> int:
        """SIGKILL every worker process and its children at once, as a crash would; returns the processes killed."""
        return self.lab.kill_workers()

    def describe(self) -> dict[str, object]:
        return {"backend": self.name, "label": self.label, "delivery": self.delivery, "servers": list(self.servers),
                "blocking_pickup": self.blocking_pickup, "location": self.location, "setting": self.setting,
                "production_of": self.production_of}


class UsesServer:
    """Mixed into a queue backend whose queue lives in a server the lab runs for it (one object of `server_class`,
    with start() and stop(), created with the lab): started before the site migrates, stopped after the workers."""

    server_class: ClassVar[type]

    def __init__(self, lab: Lab):
        super().__init__(lab)
        self.server = self.server_class(lab)

    def start_servers(self) -> None:
        self.server.start()

    def stop_servers(self) -> None:
        self.server.stop()
