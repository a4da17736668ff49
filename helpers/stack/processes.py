"""Child processes the lab owns: free loopback ports, start with a log file, wait until ready, stop the tree.

psutil finds every descendant (gunicorn workers, Huey process workers) so stopping a parent never leaves
an orphan; PR_SET_PDEATHSIG makes each direct child die with the kernel that started it, even on SIGKILL.
Each process carries a tag of its own in its environment, which its children inherit: an orphan is recognised by
it, never by a session id alone (a reaped process's id may be given to another). A server that runs none of the
lab's code gets only the environment it needs (SERVER_ENVIRONMENT), and every process reaches loopback without the
proxy an `http_proxy` variable names.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import psutil

LOOPBACK = "127.0.0.1"
LOOPBACK_NAMES = (LOOPBACK, "localhost", "::1")
# The names of the lab's environment variables a server that runs none of its code keeps (PostgreSQL, Redis, the
# SMTP sink): the site's secret key and settings stay out of it.
SERVER_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "TZ")
PROCESS_TAG = "LAB_PROCESS_TAG"  # names one ManagedProcess; its children inherit it
_PR_SET_PDEATHSIG = 1
# Resolved once, here: loading a library in a forked child while other threads run can deadlock before exec.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def free_port() -> int:
    """A port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def port_is_bound(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return True
        return False


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGTERM when the thread that forked it dies (even on SIGKILL)."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


DIE_WITH_PARENT = die_with_parent if _prctl is not None else None


def without_proxy_for_loopback(env: dict[str, str]) -> dict[str, str]:
    """`env` with loopback in no_proxy and NO_PROXY: a client of the lab's servers (urllib in the site's provider
    check) would otherwise send its loopback requests to the proxy an inherited `http_proxy` names."""
    env = dict(env)
    for name in ("no_proxy", "NO_PROXY"):
        listed = [host.strip() for host in env.get(name, "").split(",") if host.strip()]
        env[name] = ",".join([*listed, *(host for host in LOOPBACK_NAMES if host not in listed)])
    return env


def process_environment(env: dict[str, str] | None = None, keep: Sequence[str] | None = None) -> dict[str, str]:
    """This process's environment updated with `env`; with `keep`, only the variables it names."""
    merged = {**os.environ, **(env or {})}
    if keep is not None:
        merged = {name: value for name, value in merged.items() if name in keep}
    return without_proxy_for_loopback(merged)


class ProcessFailed(RuntimeError):
    pass


def tree(pid: int) -> list[psutil.Process]:
    """A process and its live descendants (gunicorn's workers, Huey's process workers)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def start_on_port(start_on: Callable[[int], None], port: int | None = None, attempts: int = 3) -> int:
    """Start a server with `start_on(port)`: on `port` (a restart keeps its port: clients know it), or on a free
    port, picked again when the server could not bind. free_port() only says a port was free a moment ago, and
    another process (a test beside this one, a client's ephemeral port) may take it before the server binds.
    Returns the port."""
    if port is not None:
        start_on(port)
        return port
    for attempt in range(attempts):
        port = free_port()
        try:
            start_on(port)
            return port
        except ProcessFailed as failure:
            if "in use" not in str(failure).lower() or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def poll_until(done: Callable[[], bool], timeout: float, shortfall: Callable[[], str],
               running: Callable[[], bool], waiting_for: str, progress: Callable[[], object] | None = None,
               limit: float | None = None) -> float:
    """Poll `done` until it holds; raise TimeoutError (saying `shortfall()`) when the time runs out, or RuntimeError
    when `running()` says the processes that would get it done have died. Returns the seconds waited.

    With `progress` (a reading that changes while the work moves on, such as a queue's depth), `timeout` counts
    from its last change and `limit` (10 x timeout by default) bounds the whole wait: a slow queue that plainly
    drains is waited for, a stuck one is not."""
    started = last_change = time.monotonic()
    limit = (10 * timeout if progress else timeout) if limit is None else limit
    seen = progress() if progress else None
    while not done():
        now = time.monotonic()
        if progress is not None:
            reading = progress()
            if reading != seen:
                seen, last_change = reading, now
        if now - last_change > timeout or now - started > limit:
            raise TimeoutError(shortfall())
        if not running():
            raise RuntimeError(f"a lab process died while {waiting_for}")
        time.sleep(0.05)
    return time.monotonic() - started


class ManagedProcess:
    """One server process: its command, environment, log file and clean stop."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        stop_signal: int = signal.SIGTERM,
        stop_timeout: float = 10.0,
        keep_env: Sequence[str] | None = None,
    ):
        """`env` updates this process's environment for the child; `keep_env` names the only variables it keeps
        (SERVER_ENVIRONMENT for a server that runs none of the lab's code)."""
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = Path(log_path)
        self.tag = secrets.token_hex(8)
        self.env = {**process_environment(env, keep_env), "PYTHONUNBUFFERED": "1", PROCESS_TAG: self.tag}
        self.cwd = cwd
        self.stop_signal = stop_signal
        self.stop_timeout = stop_timeout
        self.popen: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # the owner's alone, like every file of the run folder (a backend may open the folder for passage)
        with open(os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as log:
            self.popen = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                umask=0o077,  # the run's files (a pickle queue among them) are the owner's alone
                preexec_fn=DIE_WITH_PARENT,
            )
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_until(self, ready: Callable[[], bool], timeout: float = 30.0, what: str = "ready") -> None:
        """Poll `ready` until it holds; fail loudly, with the log's tail, if the process dies or times out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise ProcessFailed(f"{self.name} exited with {self.popen.returncode} before {what}:\n"
                                    f"{self.log_text()[-3000:]}")
            try:
                if ready():
                    return
            except OSError:
                pass
            time.sleep(0.02)
        raise ProcessFailed(f"{self.name} not {what} after {timeout} s:\n{self.log_text()[-3000:]}")

    def pin(self, cpus: Sequence[int]) -> None:
        """Keep the process and its children on `cpus` (a worker forked later inherits it from its parent), so a
        load tool on the other cores cannot take CPU from it."""
        for process in tree(self.popen.pid):
            with contextlib.suppress(psutil.NoSuchProcess):
                process.cpu_affinity(list(cpus))

    def listening(self) -> dict[int, str]:
        """Port -> address of every socket the process (or a child of it) listens on; none once it has exited."""
        found = {}
        if not self.alive():
            return found
        for process in tree(self.popen.pid):
            with contextlib.suppress(psutil.NoSuchProcess):  # a short-lived child (a PostgreSQL backend)
                found.update({c.laddr.port: c.laddr.ip for c in process.net_connections(kind="inet")
                              if c.status == psutil.CONN_LISTEN})
        return found

    def listens_on(self, port: int) -> bool:
        """The process itself listens on `port`: a port that merely accepts connections may be another process's,
        which took it before this one could bind. The bind test first: reading every socket of the process tree takes
        tens of ms of CPU, too much to poll while the server starts."""
        return port_is_bound(port) and port in self.listening()

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.popen.pid).children(recursive=True)
        except (psutil.NoSuchProcess, AttributeError):
            return []

    def stop(self) -> int | None:
        """Ask politely, wait, then kill whatever is left of the whole tree. Returns the exit code."""
        if self.popen is None:
            return None
        family = self.descendants()
        if self.alive():
            try:
                self.popen.send_signal(self.stop_signal)
                self.popen.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                family += self.descendants()
                self.popen.kill()
                self.popen.wait()
            except ProcessLookupError:
                pass
        kill_all(family)
        kill_session(self.popen.pid, self.tag)
        return self.popen.returncode

    def kill(self) -> None:
        """SIGKILL the process alone, as a crash would: its children are left for the caller to judge."""
        if self.alive():
            self.popen.kill()
            self.popen.wait()


def kill_all(processes: list[psutil.Process], timeout: float = 5.0) -> None:
    alive = [p for p in processes if p.is_running()]
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    _, still = psutil.wait_procs(alive, timeout=timeout)
    for proc in still:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(still, timeout=timeout)


def kill_session(session_id: int, tag: str) -> None:
    """SIGKILL what is left in a child's session (it started one) and carries its tag: a grandchild whose parent
    died is no longer its descendant, but it stays in the session. Once the child is reaped its id, hence its
    session's, may be another process's: the tag in the environment tells ours apart (a process whose environment
    cannot be read is not taken for ours)."""
    for proc in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
            if proc.pid != os.getpid() and os.getsid(proc.pid) == session_id \
                    and proc.environ().get(PROCESS_TAG) == tag:
                proc.kill()
