"""The lab: a real SMTP server, the site under gunicorn and a Huey consumer, started and stopped as one.

    with Lab(web_workers=4, consumer_workers=4) as lab:
        lab.url("/noop/")

Each server gets a free loopback port and writes into the run's own folder (SQLite files, logs, the SMTP
record). Stopping happens on exit, on an exception, on KeyboardInterrupt, and at interpreter exit.
"""

from __future__ import annotations

import atexit
import http.client
import os
import secrets
import signal
import sqlite3
import sys
import time
import weakref
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from helpers import runs
from helpers.processes import LOOPBACK, ManagedProcess, free_port, tcp_accepts
from helpers.smtp_sink import count_deliveries, read_deliveries

REPO_ROOT = Path(__file__).resolve().parent.parent
_live_labs: weakref.WeakSet[Lab] = weakref.WeakSet()


@dataclass
class LabConfig:
    web_workers: int = 4
    web_worker_class: str = "sync"  # "gthread" keeps connections alive
    web_threads: int = 1
    consumer_workers: int = 4
    consumer_worker_type: str = "thread"  # or "process"
    consumer_initial_delay_s: float = 0.1  # Huey's defaults: the consumer polls SQLite and backs off
    consumer_max_delay_s: float = 10.0
    consumer_backoff: float = 1.15
    smtp_delay_s: float = 0.3  # like a slow email provider
    huey_synchronous: str = "normal"  # SQLite durability of the queue: "off", "normal" or "full"


class Lab:
    def __init__(self, run_dir: Path | None = None, **config):
        self.config = LabConfig(**config)
        self.run_dir = Path(run_dir) if run_dir else runs.new_run_dir("lab")
        self.run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.smtp_record = self.run_dir / "smtp-deliveries.jsonl"
        self.huey_file = self.run_dir / "huey.sqlite3"
        self.web_port: int | None = None
        self.smtp_port: int | None = None
        self.processes: dict[str, ManagedProcess] = {}

    # -- life cycle -------------------------------------------------------------------------------

    def start(self) -> Lab:
        _live_labs.add(self)
        try:
            self._start_smtp()
            self._start_consumer()
            self._start_web()
        except BaseException:
            self.stop()
            raise
        runs.write_metadata(self.run_dir, {"lab_config": asdict(self.config), "web_port": self.web_port,
                                           "smtp_port": self.smtp_port})
        return self

    def stop(self) -> None:
        """Web first (no new work), then the consumer (it may be mid-send), then the SMTP server."""
        for name in ("web", "consumer", "smtp"):
            process = self.processes.pop(name, None)
            if process is not None:
                process.stop()
        _live_labs.discard(self)

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

    # -- the three servers ------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        if not hasattr(self, "_secret_key"):
            self._secret_key = secrets.token_urlsafe(50)
        return {
            "DJANGO_SETTINGS_MODULE": "labsite.settings",
            "LAB_RUN_DIR": str(self.run_dir),
            "LAB_HUEY_FILE": str(self.huey_file),
            "LAB_SMTP_PORT": str(self.smtp_port),
            "LAB_SECRET_KEY": self._secret_key,
            "LAB_DEBUG": "0",
            "LAB_HUEY_SYNC": self.config.huey_synchronous,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        }

    def _spawn(self, name: str, argv: list[str], **kwargs) -> ManagedProcess:
        process = ManagedProcess(name, argv, self.run_dir / f"{name}.log", env=self._env(), cwd=REPO_ROOT,
                                 **kwargs)
        self.processes[name] = process.start()
        return process

    def _start_smtp(self) -> None:
        self.smtp_port = free_port()
        smtp = self._spawn("smtp", [sys.executable, "-m", "helpers.smtp_sink", "--port", self.smtp_port,
                                    "--delay", self.config.smtp_delay_s, "--record", self.smtp_record])
        smtp.wait_until(lambda: tcp_accepts(self.smtp_port), what="accepting SMTP connections")

    def _start_consumer(self) -> None:
        c = self.config
        consumer = self._spawn(
            "consumer",
            [sys.executable, "-m", "django", "run_huey",
             "--workers", c.consumer_workers, "--worker-type", c.consumer_worker_type,
             "--delay", c.consumer_initial_delay_s, "--max-delay", c.consumer_max_delay_s,
             "--backoff", c.consumer_backoff],
            stop_signal=signal.SIGINT,  # Huey's graceful shutdown: running tasks finish
            stop_timeout=15.0,
        )
        consumer.wait_until(lambda: "Huey consumer started" in consumer.log_text(), what="consuming")

    def _start_web(self) -> None:
        c = self.config
        self.web_port = free_port()
        web = self._spawn(
            "web",
            [sys.executable, "-m", "gunicorn", "labsite.wsgi:application",
             "--bind", f"{LOOPBACK}:{self.web_port}", "--workers", c.web_workers,
             "--worker-class", c.web_worker_class, "--threads", c.web_threads,
             "--graceful-timeout", "5", "--timeout", "120", "--log-level", "warning"],
        )
        web.wait_until(lambda: self._all_web_workers_answer(), timeout=60, what="serving on every worker")

    def _all_web_workers_answer(self) -> bool:
        web = self.processes["web"]
        if len(web.descendants()) < self.config.web_workers:
            return False
        return self.get("/noop/").status == 200

    # -- what the notebooks and tests use ---------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.web_port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def get(self, path: str) -> http.client.HTTPResponse:
        """One plain request, for checks (never for timing: see helpers.client)."""
        conn = http.client.HTTPConnection(LOOPBACK, self.web_port, timeout=30)
        conn.request("GET", path)
        response = conn.getresponse()
        response.body = response.read()
        conn.close()
        return response

    def post(self, path: str, form: dict[str, str]) -> http.client.HTTPResponse:
        from urllib.parse import urlencode

        conn = http.client.HTTPConnection(LOOPBACK, self.web_port, timeout=60)
        conn.request("POST", path, body=urlencode(form),
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        response = conn.getresponse()
        response.body = response.read()
        conn.close()
        return response

    def emails_received(self) -> int:
        return count_deliveries(self.smtp_record)

    def deliveries(self) -> pd.DataFrame:
        return read_deliveries(self.smtp_record)

    def queue_depth(self) -> int:
        """Tasks waiting in Huey's SQLite queue, read straight from its file."""
        with sqlite3.connect(f"file:{self.huey_file}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("select count(*) from task").fetchone()[0]

    def wait_for_emails(self, expected: int, timeout: float = 120.0) -> float:
        """Block until the SMTP server has accepted `expected` messages; returns the seconds waited."""
        started = time.monotonic()
        while self.emails_received() < expected:
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"{self.emails_received()} of {expected} emails arrived in {timeout} s")
            if not self.running:
                raise RuntimeError(f"a lab process died while waiting for emails: {self.processes}")
            time.sleep(0.05)
        return time.monotonic() - started


def start_lab(**kwargs) -> Lab:
    return Lab(**kwargs).start()


@atexit.register
def _stop_live_labs() -> None:
    for lab in list(_live_labs):
        lab.stop()
