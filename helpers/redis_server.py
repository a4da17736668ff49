"""A real Redis server (Debian's `redis-server`) for one run: its configuration file, readiness and queue length.

The lab (helpers.stack) starts it as a ManagedProcess on a free loopback port, with its data in the run folder:

    bind 127.0.0.1, protected-mode yes      nothing outside this machine can reach it
    requirepass <per-run secret>            Huey's tasks are pickles: whoever can push to the list runs code in
                                            the consumer, and any local user can open a loopback port; the
                                            secret sits in a 0600 file, never on a command line `ps` shows
    appendonly yes, save ""                 every write goes to the append-only file (AOF); no RDB snapshots
    appendfsync always|everysec|no          the lab's huey_synchronous, as with SQLite: full, normal, off

Stopped with SIGTERM, Redis finishes and fsyncs the AOF before it exits.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from urllib.parse import quote

from helpers.processes import LOOPBACK

# The AOF's fsync policy for each of the lab's durability levels (LabConfig.huey_synchronous), as SQLite's
# synchronous pragma: "full" = fsync before every answer, "normal" = once a second (a machine crash loses up
# to the last second, a process crash nothing), "off" = when the OS pleases.
APPENDFSYNC = {"full": "always", "normal": "everysec", "off": "no"}
# Huey's Redis storage keeps the queue in one list: huey.redis.<name>, the name being settings.HUEY["name"].
QUEUE_KEY = "huey.redis.labsite"


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


def queue_length(redis_url: str, key: str = QUEUE_KEY) -> int:
    with client(redis_url) as conn:
        return int(conn.llen(key))


def commands_processed(redis_url: str) -> int:
    """Commands the server has executed since it started (INFO stats): per task, the round trips Huey makes."""
    with client(redis_url) as conn:
        return int(conn.info("stats")["total_commands_processed"])
