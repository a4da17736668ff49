"""A real Redis server (Debian's `redis-server`) for one run: its configuration file, readiness and queue length.

A queue backend that needs it mixes in UsesRedis; the lab then starts it (as a ManagedProcess on a free loopback
port, with its data in the run folder) before the site and stops it last:

    bind 127.0.0.1, protected-mode yes      nothing outside this machine can reach it
    requirepass <per-run secret>            Huey's tasks are pickles: whoever can push to the list runs code in
                                            the consumer, and any local user can open a loopback port; the
                                            secret sits in a 0600 file, never on a command line `ps` shows
    appendonly yes, save ""                 every write goes to the append-only file (AOF); no RDB snapshots
    appendfsync always|everysec|no          the lab's huey_synchronous, as with SQLite: full, normal, off
    set-proc-title no                       its command line (the configuration's path in the run folder) and
                                            environment stay readable: the lab tells its own processes by them

The server gets only SERVER_ENVIRONMENT (none of the site's settings). Stopped with SIGTERM, Redis finishes and
fsyncs the AOF before it exits.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import quote

from helpers.stack.processes import LOOPBACK, SERVER_ENVIRONMENT, start_on_port
from helpers.stack.queues import UsesServer

if TYPE_CHECKING:
    from helpers.stack.lab import Lab

# The AOF's fsync policy for each of the lab's durability levels (LabConfig.huey_synchronous), as SQLite's
# synchronous pragma: "full" = fsync before every answer, "normal" = once a second (a machine crash loses up
# to the last second, a process crash nothing), "off" = when the OS pleases.
APPENDFSYNC = {"full": "always", "normal": "everysec", "off": "no"}


def executable() -> str:
    found = shutil.which("redis-server")
    if found is None:
        raise FileNotFoundError("redis-server is not installed: `make system-deps` installs Debian's package "
                                "(apt-get install redis-server)")
    return found


def write_config(run_dir: Path, port: int, synchronous: str = "normal", password: str | None = None) -> Path:
    """The server's configuration file in the run folder (mode 0600: it holds the password)."""
    if synchronous not in APPENDFSYNC:
        raise ValueError(f"synchronous must be one of {sorted(APPENDFSYNC)}, not {synchronous!r}")
    lines = [
        f"port {port}",
        f"bind {LOOPBACK}",
        "protected-mode yes",
        f"dir {run_dir}",
        "daemonize no",
        'logfile ""',  # to stdout: the ManagedProcess's log in the run folder
        'save ""',
        "appendonly yes",
        f"appendfsync {APPENDFSYNC[synchronous]}",
        "databases 1",
        "set-proc-title no",
    ]
    if password:
        lines.append(f"requirepass {password}")
    path = Path(run_dir) / "redis.conf"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as conf:
        conf.write("\n".join(lines) + "\n")
    return path


def new_password() -> str:
    return secrets.token_urlsafe(24)


def url(port: int, password: str | None = None, db: int = 0) -> str:
    auth = f":{quote(password, safe='')}@" if password else ""
    return f"redis://{auth}{LOOPBACK}:{port}/{db}"


def client(redis_url: str, timeout_s: float = 5.0):
    import redis

    return redis.Redis.from_url(redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)


def answers(redis_url: str) -> bool:
    """True once the server accepts the password and has loaded its AOF (PING answers PONG)."""
    import redis

    try:
        with client(redis_url, timeout_s=0.5) as conn:
            return bool(conn.ping())
    except (redis.RedisError, OSError):
        return False


def commands_processed(redis_url: str) -> int:
    """Commands the server has executed since it started (INFO stats): per task, the round trips Huey makes."""
    with client(redis_url) as conn:
        return int(conn.info("stats")["total_commands_processed"])


class RedisServer:
    """The run's redis-server: a per-run password, a port kept across restarts (a restarted server replays its
    AOF from the run folder)."""

    def __init__(self, lab: Lab):
        self.lab = lab
        self.port: int | None = None
        self._password = new_password()

    @property
    def url(self) -> str:
        """The server's URL, password included (for a client of this run's server)."""
        return url(self.port, self._password)

    def client(self, timeout_s: float = 5.0):
        return client(self.url, timeout_s)

    def start(self) -> None:
        self.stop()  # what is left of a previous one (a crashed server's entry)
        start_on_port(self._start_on, self.port)  # a restart keeps its port: the site and the workers know it

    def _start_on(self, port: int) -> None:
        self.port = port
        conf = write_config(self.lab.run_dir, self.port, self.lab.config.huey_synchronous, self._password)
        server = self.lab.spawn("redis", [executable(), str(conf)], keep_env=SERVER_ENVIRONMENT)
        server.wait_until(lambda: answers(self.url), what="answering PING")

    def stop(self) -> None:
        self.lab.stop_process("redis")

    def commands_processed(self) -> int:
        return commands_processed(self.url)


class UsesRedis(UsesServer):
    """Mixed into a queue backend that keeps its queue in the run's Redis server: a list (`queue_key`, its depth)
    and, where the library schedules tasks for later, a sorted set (`schedule_key`)."""

    servers = ("redis",)
    server_class = RedisServer
    queue_key: ClassVar[str]
    schedule_key: ClassVar[str | None] = None

    @property
    def redis(self) -> RedisServer:
        return self.server

    def site_env(self) -> dict[str, str]:
        return {**super().site_env(), "LAB_REDIS_URL": self.redis.url}

    def connection(self):
        return self.redis.client()

    def read_depth(self, conn) -> int:
        return int(conn.llen(self.queue_key))

    def read_scheduled(self, conn) -> int:
        return 0 if self.schedule_key is None else int(conn.zcard(self.schedule_key))

    def server_commands(self) -> int:
        return self.redis.commands_processed()

    @property
    def location(self) -> str:
        return f"redis://{LOOPBACK}:{self.redis.port}/0"
