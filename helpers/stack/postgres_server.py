"""A real PostgreSQL server (Debian's package) for one run: initdb into the run folder, a free loopback port, a
per-run password, stopped with the lab.

A queue backend that needs it mixes in UsesPostgres; the lab then starts it before the site migrates (Django's own
database is this server too, so a task row written by the Tasks API's database backend shares the request's
transaction) and stops it last:

    listen_addresses 127.0.0.1 (-h)        nothing outside this machine can reach it
    no unix socket                         every client comes over TCP on loopback: no shared /var/run/postgresql,
                                           and a deep run folder (a rerun's) exceeds a socket path's 107 bytes
    scram-sha-256 for every connection     the password is per run, in 0600 files, never on a command line:
                                           initdb reads it from pg/initdb-password (deleted after), clients from
                                           <run>/pgpass (libpq's passfile format), which a later lab in the same
                                           run folder reads it back from: its cluster keeps that password
    SERVER_ENVIRONMENT only                the server sees none of the site's settings (its secret key)

PostgreSQL refuses to run as root, and CI runs as root. Then initdb and the server run as Debian's unprivileged
`postgres` user (helpers.stack.server_user): the run folder becomes 0711 (others may pass through it, not list it)
and its pg/ folder belongs to `postgres`, mode 0700, while every other file of the run folder stays the lab's own
(0600/0700, Lab.secure_files). SIGINT is PostgreSQL's fast shutdown: open sessions are rolled back, the server
checkpoints and exits.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from helpers.stack import server_user
from helpers.stack.processes import LOOPBACK, SERVER_ENVIRONMENT, process_environment, start_on_port
from helpers.stack.queues import UsesServer
from helpers.stack.server_user import private_file, running_as_root
from helpers.stack.site_database import PostgresDatabase

if TYPE_CHECKING:
    from helpers.stack.lab import Lab

SERVER_USER = "postgres"  # the system user Debian's postgresql package creates
ROLE = "lab"  # the superuser initdb creates, which the site connects as
DATABASE = "lab"


def bin_dir() -> Path:
    """The newest of Debian's PostgreSQL versions (/usr/lib/postgresql/<major>/bin)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: [int(n) for n in re.findall(r"\d+", p.parent.parent.name)])
    if not found:
        raise FileNotFoundError("PostgreSQL is not installed: `make system-deps` installs Debian's package "
                                "(apt-get install postgresql)")
    return found[-1].parent


def as_server_user() -> list[str]:
    """The prefix that runs a command as the `postgres` user when we are root (nothing otherwise); SIGINT, its fast
    shutdown, when the lab dies."""
    return server_user.as_server_user(SERVER_USER, signal.SIGINT)


def conninfo(port: int, passfile: Path, dbname: str = DATABASE, timeout_s: float = 5) -> str:
    """A libpq connection string without the password (libpq reads it from `passfile`)."""
    return (f"host={LOOPBACK} port={port} dbname={dbname} user={ROLE} passfile={passfile} "
            f"connect_timeout={max(1, round(timeout_s))}")


def connect(info: str):
    import psycopg

    return psycopg.connect(info, autocommit=True)


def answers(info: str) -> bool:
    import psycopg

    try:
        with connect(info) as conn:
            return conn.execute("select 1").fetchone() == (1,)
    except psycopg.OperationalError:
        return False


class PostgresServer:
    """The run's PostgreSQL: a data folder initialised once per run folder, a port kept across restarts."""

    def __init__(self, lab: Lab):
        self.lab = lab
        self.port: int | None = None
        self._password: str | None = None

    @property
    def folder(self) -> Path:
        """PostgreSQL's own folder: its data (the server user's, 0700)."""
        return self.lab.run_dir / "pg"

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    @property
    def passfile(self) -> Path:
        """The clients' password file (the lab's user, 0600)."""
        return self.lab.run_dir / "pgpass"

    def conninfo(self, dbname: str = DATABASE) -> str:
        return conninfo(self.port, self.passfile, dbname)

    @property
    def url(self) -> str:
        """Where the lab's database is, for a reader of the notebook (no password)."""
        return f"postgresql://{ROLE}@{LOOPBACK}:{self.port}/{DATABASE}"

    def connect(self, dbname: str = DATABASE):
        return connect(self.conninfo(dbname))

    def env(self) -> dict[str, str]:
        """For the site's settings (labsite/settings.py, postgres_database): where the server is, no password."""
        return {"LAB_PG_HOST": LOOPBACK, "LAB_PG_PORT": str(self.port), "LAB_PG_NAME": DATABASE,
                "LAB_PG_USER": ROLE, "LAB_PG_PASSFILE": str(self.passfile)}

    def start(self) -> None:
        self.stop()
        start_on_port(self._start_on, self.port)  # a restart keeps its port: the site and the workers know it

    def _start_on(self, port: int) -> None:
        self.port = port
        self._prepare_folders()
        if not (self.data_dir / "PG_VERSION").exists():
            self._password = secrets.token_urlsafe(24)
            self._initdb()
        elif self._password is None:
            self._password = self._password_of_the_cluster()
        private_file(self.passfile, f"{LOOPBACK}:{self.port}:*:{ROLE}:{self._password}\n")
        server = self.lab.spawn(
            "postgres",
            [*as_server_user(), bin_dir() / "postgres", "-D", self.data_dir, "-h", LOOPBACK, "-p", self.port,
             "-c", "unix_socket_directories="],
            stop_signal=signal.SIGINT, keep_env=SERVER_ENVIRONMENT)
        server.wait_until(lambda: answers(self.conninfo("postgres")), what="accepting connections")
        self._create_database()

    def stop(self) -> None:
        self.lab.stop_process("postgres")

    def _prepare_folders(self) -> None:
        server_user.server_folder(self.lab, self.folder, SERVER_USER)

    def _password_of_the_cluster(self) -> str:
        """The password an earlier lab in this run folder gave the cluster it initialised (its last field in the
        passfile)."""
        try:
            return self.passfile.read_text().strip().rsplit(":", 1)[1]
        except (FileNotFoundError, IndexError):
            raise RuntimeError(f"{self.data_dir} holds a cluster but {self.passfile} no password for it: remove "
                               f"the run folder's pg/ to start afresh") from None

    def _initdb(self) -> None:
        """A new cluster whose superuser `lab` has the run's password (scram-sha-256 for local and TCP alike)."""
        owner = SERVER_USER if running_as_root() else None
        pwfile = private_file(self.folder / "initdb-password", self._password + "\n", owner)
        try:
            log_fd = os.open(self.lab.run_dir / "initdb.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(log_fd, "ab") as log:
                done = subprocess.run(
                    [*as_server_user(), bin_dir() / "initdb", "-D", self.data_dir, "-U", ROLE,
                     f"--pwfile={pwfile}", "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C",
                     "--no-sync", "--no-instructions"],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=120, umask=0o077,
                    env=process_environment(keep=SERVER_ENVIRONMENT))
        finally:
            pwfile.unlink(missing_ok=True)
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}): see {self.lab.run_dir / 'initdb.log'}")

    def _create_database(self) -> None:
        with self.connect("postgres") as conn:
            if conn.execute("select 1 from pg_database where datname = %s", (DATABASE,)).fetchone() is None:
                conn.execute(f'create database "{DATABASE}"')


class UsesPostgres(UsesServer):
    """Mixed into a queue backend that keeps its queue in the run's PostgreSQL server; Django's own database moves
    there too (the site's settings read LAB_PG_*)."""

    servers = ("postgres",)
    server_class = PostgresServer

    @property
    def postgres(self) -> PostgresServer:
        return self.server

    def connection(self):
        return self.postgres.connect()

    def site_env(self) -> dict[str, str]:
        return {**super().site_env(), **self.postgres.env()}

    def site_database(self) -> PostgresDatabase:
        return PostgresDatabase(self.postgres)

    @property
    def location(self) -> str:
        return self.postgres.url
