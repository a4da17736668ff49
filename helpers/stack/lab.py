"""The lab: a real SMTP server, the site under a web server (helpers.stack.web), a queue backend's servers and
workers (helpers.stack.queues), started and stopped as one.

    with Lab(web_workers=4, consumer_workers=4) as lab:
        lab.http.post("/email/deferred/", {"to": "ada@example.test"})
        lab.mail.wait_for_emails(1)

Each server gets a free loopback port and writes into the run's own folder (SQLite files, logs, the SMTP
record). Stopping happens on exit, on an exception, on KeyboardInterrupt, and at interpreter exit. What reads the
running lab is reached from it: `lab.http` (the site), `lab.mail` (the SMTP record), `lab.ledger` (the job ledger in
the site's database), `lab.queue` (the queue backend).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import stat
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import psutil

from helpers import REPO_ROOT, runs
from helpers.instruments.ledger import LedgerReader
from helpers.instruments.site_client import SiteClient
from helpers.instruments.smtp_record import SmtpRecord
from helpers.stack.processes import (
    DIE_WITH_PARENT,
    LOOPBACK,
    SERVER_ENVIRONMENT,
    ManagedProcess,
    free_port,
    poll_until,
    process_environment,
    start_on_port,
)
from helpers.stack.queues import backend_class
from helpers.stack.web import WebServer, web_server_class

# The job ledger's mechanism switches (LAB_LEDGER_<NAME>=0 turns one off; see labsite/ledger.py).
LEDGER_MECHANISMS = ("provider_check", "retries", "reconciler", "on_commit")

# Every started lab, by run folder, held strongly: a lab the notebook no longer references still stops at exit.
_live_labs: dict[Path, Lab] = {}


@dataclass
class LabConfig:
    web_server: str = "gunicorn"  # WSGI, or "uvicorn": ASGI (labsite.asgi), async views on an event loop
    web_workers: int = 4  # processes serving requests, under any server
    web_worker_class: str = "sync"  # gunicorn's: "gthread" keeps connections alive (helpers.stack.web)
    web_threads: int = 1  # gunicorn gthread's threads per worker
    web_limit_concurrency: int | None = None  # uvicorn's --limit-concurrency per worker (503 beyond); None: none
    consumer_workers: int = 4
    consumer_worker_type: str = "thread"  # or "process"
    consumer_initial_delay_s: float = 0.1  # Huey's defaults: the consumer polls SQLite and backs off
    consumer_max_delay_s: float = 10.0
    consumer_backoff: float = 1.15
    huey_health_check: bool = True  # Huey's consumer checks its workers every 10 s (False: run_huey -C)
    celery_pool: str = "prefork"  # a Celery worker's pool: "prefork" (processes), "threads" or "solo"
    smtp_delay_s: float = 0.3  # like a slow email provider
    smtp_timeout_s: float = 30.0  # the site's SMTP client socket timeout (Django's EmailBackend)
    ledger: bool = False  # run the job ledger's reconciler (labsite/ledger.py, POST /email/ledger/)
    ledger_deadline_s: float = 10.0  # a ledger job pending this long is enqueued again
    ledger_lease_s: float | None = None  # how long a worker's claim on a job lasts; None: 3 x smtp_timeout_s
    ledger_retry_delay_s: float = 0.5  # first retry after an SMTP error, doubling each time
    # mechanisms of the ledger switched off, for mutation tests only: any of LEDGER_MECHANISMS (labsite/ledger.py)
    ledger_off: tuple[str, ...] = ()
    reconcile_every_s: float = 1.0
    max_backlog: int = 0  # > 0: every deferred endpoint answers 503 + Retry-After at this queue depth
    huey_synchronous: str = "normal"  # SQLite durability of the queue: "off", "normal" or "full"
    record_task_events: bool = False  # Huey's stats recorder: per-task lifecycle events (helpers.lifecycle)
    huey_log_level: str = "INFO"  # "WARNING" drops Huey's two log lines per task
    queue_backend: str = "huey_sqlite"  # a module of helpers.stack.queues: "huey_sqlite", "huey_redis", ...
    consumer_processes: int = 1  # separate worker processes, each with consumer_workers workers
    redis_read_timeout_s: float = 1.0  # a worker's blocking pop returns empty after this (Huey's default): a stop
    # waits up to this long
    poll_interval_s: float | None = None  # a polling worker's one knob, its wait between looks at an empty queue
    # (django-tasks-db's db_worker --interval); None: the library's default
    site_env: dict[str, str] = field(default_factory=dict)  # more LAB_* settings for every process of the site

    def __post_init__(self):
        web_server_class(self.web_server, self.web_worker_class)  # raises for a server or worker class unknown
        if unknown := set(self.ledger_off) - set(LEDGER_MECHANISMS):
            raise ValueError(f"ledger_off: {sorted(unknown)} not among {LEDGER_MECHANISMS}")


class Lab:
    def __init__(self, run_dir: Path | None = None, **config):
        self.config = LabConfig(**config)
        self.run_dir = Path(run_dir) if run_dir else runs.new_run_dir("lab")
        self.run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.smtp_record = self.run_dir / "smtp-deliveries.jsonl"
        self.smtp_arrivals = self.run_dir / "smtp-arrivals.jsonl"  # every message as its data arrives
        self.smtp_control = self.run_dir / "smtp-fault.json"  # the SMTP server's fault mode, re-read per message
        self.stats_file = self.run_dir / "huey-stats.sqlite3"
        # The temporary files of the lab's processes (multiprocessing's pymp-* folders, upload spools, gunicorn's
        # heartbeat files): a SIGKILLed worker cannot remove its own, and they stay with the run, not in /tmp.
        self.tmp_dir = self.run_dir / "tmp"
        self.tmp_dir.mkdir(exist_ok=True, mode=0o700)
        self.web_port: int | None = None
        self.smtp_port: int | None = None
        self.consumers_ready_at: float | None = None  # epoch s when the last consumer process said it started
        self.consumer_start_s: float | None = None  # how long the consumer's last start took, spawn to ready
        self.processes: dict[str, ManagedProcess] = {}
        self.queue = backend_class(self.config.queue_backend)(self)
        self.mail = SmtpRecord(self.smtp_record, running=lambda: self.running, arrivals_path=self.smtp_arrivals)
        self.ledger = LedgerReader(self.queue.site_database())
        self._secret_key = secrets.token_urlsafe(50)

    # -- life cycle -------------------------------------------------------------------------------

    def start(self) -> Lab:
        previous = _live_labs.get(self.run_dir)
        if previous is not None and previous is not self:
            previous.stop()  # the same cell run again: one lab per run folder, whose files it owns
        _live_labs[self.run_dir] = self
        try:
            self._start_smtp()
            self.queue.begin_servers()
            self._migrate()
            self.queue.servers_ready()
            self._start_consumer()
            if self.config.ledger:
                self._start_reconciler()
            self._start_web()
        except BaseException:
            self.stop()
            raise
        runs.write_metadata(self.run_dir, {"lab_config": asdict(self.config), "web_port": self.web_port,
                                           "smtp_port": self.smtp_port, "queue": self.queue.describe(),
                                           "web": self.web.describe()})
        self.secure_files()
        return self

    def stop(self) -> None:
        """Web first (no new work), then the workers (they may be mid-send), the SMTP server, the queue's servers
        last."""
        self.stop_process("web")
        self.stop_process("reconciler")
        self.stop_consumer()
        self.stop_process("smtp")
        self.queue.stop_servers()
        for name in list(self.processes):  # anything a backend started under another name
            self.stop_process(name)
        if _live_labs.get(self.run_dir) is self:
            del _live_labs[self.run_dir]

    def stop_process(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process is not None:
            process.stop()

    def __enter__(self) -> Lab:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return bool(self.processes) and all(p.alive() for p in self.processes.values())

    def pids(self) -> list[int]:
        """Every process the lab runs now, children included."""
        found = []
        for process in self.processes.values():
            if process.alive():
                found.append(process.pid)
                found.extend(child.pid for child in process.descendants())
        return found

    def listening_sockets(self) -> dict[int, str]:
        """Port -> address of every socket the lab's processes listen on (all must be loopback)."""
        return {port: address for process in self.processes.values()
                for port, address in process.listening().items()}

    # -- the three servers ------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        return {
            "DJANGO_SETTINGS_MODULE": "labsite.settings",
            "LAB_RUN_DIR": str(self.run_dir),
            "TMPDIR": str(self.tmp_dir),
            "LAB_SMTP_PORT": str(self.smtp_port),
            "LAB_SECRET_KEY": self._secret_key,
            "LAB_DEBUG": "0",
            "LAB_HUEY_STATS": "1" if self.config.record_task_events else "0",
            "LAB_HUEY_STATS_FILE": str(self.stats_file),
            "LAB_SMTP_TIMEOUT": str(self.config.smtp_timeout_s),
            "LAB_LEDGER_DEADLINE_S": str(self.config.ledger_deadline_s),
            "LAB_LEDGER_LEASE_S": str(self.config.ledger_lease_s or 3 * self.config.smtp_timeout_s),
            "LAB_LEDGER_RETRY_DELAY_S": str(self.config.ledger_retry_delay_s),
            **{f"LAB_LEDGER_{mechanism.upper()}": "0" for mechanism in self.config.ledger_off},
            "LAB_MAX_BACKLOG": str(self.config.max_backlog),
            "LAB_PROVIDER_STATUS_URL": f"http://{LOOPBACK}:{getattr(self, 'smtp_status_port', 0)}/messages",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
            **self.queue.site_env(),
            **self.config.site_env,
        }

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None, **kwargs) -> ManagedProcess:
        """Start one of the lab's processes, logging into the run folder, with the site's environment (and `env`:
        a server's own variables, which its `keep_env` must name)."""
        process = ManagedProcess(name, argv, self.run_dir / f"{name}.log", env={**self._env(), **(env or {})},
                                 cwd=REPO_ROOT, **kwargs)
        self.processes[name] = process.start()
        return process

    def _start_smtp(self) -> None:
        start_on_port(self._start_smtp_on)

    def _start_smtp_on(self, port: int) -> None:
        self.smtp_port = port
        self.smtp_status_port = free_port()  # the SMTP server's message-status API (helpers.smtp_sink)
        smtp = self.spawn("smtp", [sys.executable, "-m", "helpers.stack.smtp_sink", "--port", self.smtp_port,
                                    "--delay", self.config.smtp_delay_s, "--record", self.smtp_record,
                                    "--control", self.smtp_control, "--status-port", self.smtp_status_port,
                                    "--arrivals", self.smtp_arrivals],
                          keep_env=SERVER_ENVIRONMENT)
        smtp.wait_until(lambda: smtp.listens_on(self.smtp_port) and smtp.listens_on(self.smtp_status_port),
                        what="listening for SMTP and status requests")

    # -- the workers: consumer_processes separate processes, "consumer", "consumer-2", ... -----------------------

    @staticmethod
    def consumer_name(index: int) -> str:
        return "consumer" if index == 0 else f"consumer-{index + 1}"

    def consumer_names(self) -> list[str]:
        """The consumer processes running now, first to last."""
        return [name for name in self.processes if name == "consumer" or name.startswith("consumer-")]

    def _start_consumer(self) -> None:
        ready_line = self.queue.worker_ready_line
        began = time.monotonic()
        started = []
        for index in range(self.config.consumer_processes):
            argv = self.queue.worker_argv()
            if argv is None:  # a backend without workers (its tasks run in the request)
                break
            name = self.consumer_name(index)
            log = self.run_dir / f"{name}.log"
            # a restarted consumer appends to the same log
            starts_before = log.read_text(errors="replace").count(ready_line) if log.exists() else 0
            consumer = self.spawn(name, argv, stop_signal=self.queue.worker_stop_signal, stop_timeout=15.0)
            started.append((consumer, starts_before))
        for consumer, starts_before in started:  # they start side by side; wait for each
            consumer.wait_until(lambda c=consumer, n=starts_before: c.log_text().count(ready_line) > n,
                                what="consuming")
        self.consumers_ready_at = time.time()
        self.consumer_start_s = time.monotonic() - began

    def stop_consumer(self) -> None:
        """Stop every consumer process (gracefully, side by side: running tasks finish); tasks enqueued now wait
        in the queue."""
        consumers = [self.processes.pop(name) for name in self.consumer_names()]
        if len(consumers) == 1:
            consumers[0].stop()
        elif consumers:
            with ThreadPoolExecutor(len(consumers)) as pool:
                list(pool.map(ManagedProcess.stop, consumers))

    def kill_workers(self) -> int:
        """SIGKILL every worker process and its children, as a crash would; returns how many worker processes
        died. Their entries stay until start_consumer replaces them."""
        killed = 0
        for name in self.consumer_names():
            process = self.processes[name]
            family = process.descendants()
            process.kill()
            for child in family:
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.kill()
            killed += 1
        return killed

    def start_consumer(self, **changes) -> None:
        """(Re)start the consumer, with `changes` to its LabConfig fields (workers, worker type, delays)."""
        self.stop_consumer()
        self.config = replace(self.config, **changes)
        self._start_consumer()
        runs.write_metadata(self.run_dir, {"lab_config": asdict(self.config)})

    def django_env(self) -> dict[str, str]:
        """The environment the lab's Django processes run with, for a helper process of the same site."""
        return process_environment(self._env())

    @property
    def web(self) -> WebServer:
        """The web server LabConfig names (web_server, web_worker_class)."""
        return web_server_class(self.config.web_server, self.config.web_worker_class)(self.config)

    def _start_web(self, port: int | None = None) -> None:
        """On `port` (a restart keeps its port), or on a free one."""
        start_on_port(self._start_web_on, port)

    def _start_web_on(self, port: int) -> None:
        self.web_port = port
        server = self.web
        log = self.run_dir / "web.log"
        log_before = len(log.read_text(errors="replace")) if log.exists() else 0  # a restart appends to the log
        process = self.spawn("web", server.argv(port))
        process.wait_until(lambda: process.listens_on(port) and self._all_web_workers_answer(server, log_before),
                           timeout=60, what="serving on every worker")

    def _all_web_workers_answer(self, server: WebServer, log_before: int) -> bool:
        """Every worker process has loaded the site, and one answers."""
        process = self.processes["web"]
        if server.workers_started(process, process.log_text()[log_before:]) < self.config.web_workers:
            return False
        return self.http.get("/noop/").status == 200

    def restart_web(self, crash: bool = False, down_s: float = 0.0, **changes) -> float:
        """Stop the web server and start it again on the same port `down_s` later (a supervisor's restart delay),
        with `changes` to its LabConfig fields (e.g. max_backlog, or web_server="uvicorn"). crash=False: SIGTERM,
        in-flight requests finish; crash=True: SIGKILL the master and every worker at once, mid-request. Returns
        the seconds the port was not serving."""
        web = self.processes.pop("web")
        started = time.monotonic()
        if crash:
            workers = web.descendants()
            web.kill()
            for worker in workers:
                worker.kill()
        web.stop()
        time.sleep(down_s)
        self.config = replace(self.config, **changes)
        self._start_web(port=self.web_port)
        runs.write_metadata(self.run_dir, {"lab_config": asdict(self.config)})
        return time.monotonic() - started

    def restart_site(self, **changes) -> None:
        """Restart every process that runs the site's code (reconciler, consumer, web server; gracefully) with
        `changes` to their LabConfig fields: settings the site reads once, when a process starts (ledger_off, for
        one), change for all of them at once. The SMTP server, the queue's servers and their data stay."""
        self.stop_process("reconciler")
        self.start_consumer(**changes)
        if self.config.ledger:
            self._start_reconciler()
        self.restart_web()

    # -- the job ledger: Django's database, its migrations, the reconciler ---------------------------

    def _migrate(self) -> None:
        """Create or update Django's database (the job ledger) before any process of the site uses it."""
        self.manage("migrate", "--noinput", "-v", "1", log_name="migrate.log")

    def manage(self, *args, timeout: float = 120.0, log_name: str | None = None) -> subprocess.CompletedProcess:
        """Run a Django management command with the site's environment, as the lab's own processes see it. Its
        output is returned (and appended to `log_name` in the run folder); a failure raises with the output's tail."""
        done = subprocess.run([sys.executable, "-m", "django", *map(str, args)], env=self.django_env(),
                              cwd=REPO_ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              timeout=timeout, umask=0o077, preexec_fn=DIE_WITH_PARENT)
        if log_name is not None:
            with open(os.open(self.run_dir / log_name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "a") as log:
                log.write(done.stdout + done.stderr)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}")
        return done

    def _start_reconciler(self) -> None:
        log = self.run_dir / "reconciler.log"
        starts_before = log.read_text(errors="replace").count("reconciler started") if log.exists() else 0
        reconciler = self.spawn("reconciler", [sys.executable, "-m", "django", "reconcile_jobs",
                                                "--interval", self.config.reconcile_every_s])
        # a restarted reconciler appends to the same log
        reconciler.wait_until(lambda: reconciler.log_text().count("reconciler started") > starts_before,
                              what="reconciling")

    def secure_files(self) -> list[Path]:
        """Make the run folder's files (the pickle queue, the ledger, logs, run.json) readable by their owner only.
        The lab's processes create files with umask 077 already; this covers those this process made (logs,
        run.json). It matters once a backend opens the run folder for passage (PostgreSQL's, as root: 0711)."""
        secured = []
        owner = os.geteuid()
        for path in self.run_dir.iterdir():
            info = path.lstat()
            if stat.S_ISREG(info.st_mode) and info.st_uid == owner:
                path.chmod(stat.S_IMODE(info.st_mode) & 0o700)
                secured.append(path)
        return secured

    # -- what the notebooks and tests use ---------------------------------------------------------

    @property
    def http(self) -> SiteClient:
        """The site, asked one plain request at a time (for checks, never for timing)."""
        return SiteClient(f"http://{LOOPBACK}:{self.web_port}")

    def queue_depth(self) -> int:
        """Tasks waiting in the queue, whichever backend holds it."""
        return self.queue.depth()

    def wait_until_drained(self, timeout: float = 300.0) -> float:
        """Block until the queue is empty, so one experiment's backlog does not weigh on the next; give up after
        `timeout` s without a task taken (or 10 x timeout in all), not after a fixed total: a slow queue on a busy
        machine (RQ drains about 50 tasks/s here) is still draining."""
        return poll_until(lambda: self.queue_depth() == 0, timeout,
                          lambda: f"{self.queue_depth()} tasks still queued, none taken in the last {timeout} s",
                          lambda: self.running, "draining the queue", progress=self.queue_depth)


def start_lab(**kwargs) -> Lab:
    return Lab(**kwargs).start()


@atexit.register
def _stop_live_labs() -> None:
    for lab in list(_live_labs.values()):
        lab.stop()
