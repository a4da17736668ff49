"""The lab leaves nothing behind: no temporary file after a test session, no run folder beyond the newest few after
`make clean`, no process after its kernel died or its session id went to another, no secret in a server's
environment, and no loopback request sent to a proxy."""

import http.server
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pytest

from helpers import REPO_ROOT
from helpers.stack import Lab
from helpers.stack.processes import (
    LOOPBACK,
    PROCESS_TAG,
    SERVER_ENVIRONMENT,
    ManagedProcess,
    free_port,
    process_environment,
)
from tests import scratch
from tests.test_processes import wait_gone

pytestmark = pytest.mark.stack


# -- a test session leaves nothing outside the clone -----------------------------------------------------------


@pytest.fixture
def watched():
    """An empty folder that PostgreSQL's user may pass through (as /tmp), to serve as a temporary folder."""
    folder = Path(tempfile.mkdtemp(prefix="watched-", dir=scratch.scratch_folder()))
    folder.chmod(0o711)
    yield folder
    shutil.rmtree(folder)


def test_a_test_session_leaves_nothing_in_the_temporary_folder_nor_in_the_clone(watched):
    """A pytest session of its own (two xdist workers, a PostgreSQL lab, tmp_path, a kernel-like child), started
    with an empty temporary folder: afterwards that folder is still empty and the clone's .tmp/ holds no more than
    before."""
    env = {name: value for name, value in os.environ.items()
           if name not in (scratch.SCRATCH, scratch.OWNER, "LAB_RUNS_DIR", "LAB_RUN_DIR", "LAB_TESTS_RUN_DIR_OWNER")
           and not name.startswith("PYTEST_")}
    base = scratch.scratch_base()
    before = set(base.iterdir()) if base.exists() else set()
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-n", "2",
                           "tests/leave_nothing_session.py"], cwd=REPO_ROOT, env={**env, "TMPDIR": str(watched)},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert sorted(p.name for p in watched.iterdir()) == []
    assert (set(base.iterdir()) if base.exists() else set()) == before


def test_the_session_runs_inside_its_scratch_folder():
    folder = scratch.scratch_folder()
    assert Path(os.environ["LAB_RUNS_DIR"]).parent == folder
    assert Path(os.environ["TMPDIR"]) in (folder, folder / os.environ.get("PYTEST_XDIST_WORKER", ""))


# -- make clean keeps the newest runs ---------------------------------------------------------------------------


def test_make_clean_keeps_the_newest_runs_only(tmp_path):
    runs = tmp_path / "runs"
    names = ["20261120T100000-rerun", "20261121T100000-lab", "20261122T100000-rerun", "20261123T100000-bench"]
    for name in names:
        (runs / name).mkdir(parents=True)
        (runs / name / "run.json").write_text("{}")
    (runs / "reference-report").mkdir()
    (runs / ".gitkeep").write_text("")
    (tmp_path / "scratch" / "session-x").mkdir(parents=True)
    subprocess.run(["make", "-s", "clean", f"RUNS_DIR={runs}", f"VENV={tmp_path / 'venv'}",
                    f"SCRATCH_DIR={tmp_path / 'scratch'}", "KEEP_RUNS=2"], cwd=REPO_ROOT, check=True, timeout=30)
    assert sorted(p.name for p in runs.iterdir()) == [".gitkeep", *names[2:], "reference-report"]
    assert not (tmp_path / "scratch").exists()


# -- wrk dies with the kernel that started it ----------------------------------------------------------------


def test_wrk_dies_with_the_kernel_that_started_it():
    """SIGKILL the process that runs wrk (as a notebook kernel dies): wrk goes too."""
    with socket.create_server((LOOPBACK, 0)) as silent:  # accepts connections, never answers
        script = ("from helpers.instruments import wrk\n"
                  f"wrk.run('http://{LOOPBACK}:{silent.getsockname()[1]}/', connections=1, duration_s=120, "
                  "threads=1)\n")
        kernel = subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT, start_new_session=True)
        wrk = []
        try:
            deadline = time.monotonic() + 20
            while not (wrk := [p.pid for p in psutil.Process(kernel.pid).children() if p.name() == "wrk"]):
                assert time.monotonic() < deadline, "wrk did not start"
                time.sleep(0.05)
            kernel.kill()
            kernel.wait(10)
            assert wait_gone(wrk, timeout=5) == []
        finally:
            kernel.kill()
            kernel.wait(10)
            for pid in wait_gone(wrk, timeout=0):
                psutil.Process(pid).kill()


# -- a stop kills only what is really ours -------------------------------------------------------------------

LAST_PID = Path("/proc/sys/kernel/ns_last_pid")
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (as CI has)")


def start_with_pid(pid: int, attempts: int = 300) -> subprocess.Popen | None:
    """A process with the id `pid`, leading a session of its own (so its session id is `pid` too), or None when
    another process kept taking the id first or the id is still in use."""
    for _ in range(attempts):
        LAST_PID.write_text(str(pid - 1))
        process = subprocess.Popen(["sleep", "60"], start_new_session=True)
        if process.pid == pid:
            return process
        process.kill()
        process.wait()
    return None


@as_root
def test_stop_spares_a_process_that_was_given_a_reaped_childs_session_id(tmp_path):
    """A child killed and reaped (a crashed worker) frees its id; another program's process may get it and lead a
    session with it. Stopping the child's entry later must not kill that process."""
    process = ManagedProcess("crashed", ["sleep", "60"], tmp_path / "crashed.log").start()
    process.kill()
    stranger = start_with_pid(process.pid)
    if stranger is None:
        pytest.skip("could not give the reaped id to another process (the machine forks too fast)")
    try:
        assert os.getsid(stranger.pid) == process.pid
        process.stop()
        assert stranger.poll() is None, "stop() killed a process that was not the lab's"
    finally:
        stranger.kill()
        stranger.wait()


def test_stop_still_kills_its_own_orphan_in_the_session(tmp_path):
    pid_file = tmp_path / "orphan.pid"
    process = ManagedProcess("orphaner", ["sh", "-c", f"sleep 300 & echo $! > {pid_file}; kill -9 $$"],
                             tmp_path / "orphaner.log").start()
    deadline = time.monotonic() + 10
    while process.alive() or not pid_file.exists() or not pid_file.read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    orphan = int(pid_file.read_text())
    process.stop()
    assert wait_gone([orphan], timeout=5) == []


# -- a PostgreSQL lab starts again in its run folder ---------------------------------------------------------


def test_a_postgresql_lab_starts_again_in_an_existing_run_folder(tmp_path):
    """A second lab in the same run folder (a rerun of a cell) finds the cluster initialised with the first lab's
    password, and answers."""
    from helpers import runs

    run_dir = runs.new_run_dir("pg-again")
    first = Lab(run_dir=run_dir, queue_backend="huey_postgres")
    try:
        first.queue.start_servers()
        with first.queue.postgres.connect() as conn:
            conn.execute("create table kept (n int)")
    finally:
        first.stop()
    again = Lab(run_dir=run_dir, queue_backend="huey_postgres")
    try:
        again.queue.start_servers()
        with again.queue.postgres.connect() as conn:
            assert conn.execute("select count(*) from kept").fetchone() == (0,)
    finally:
        again.stop()


# -- each server gets only the environment it needs ------------------------------------------------------------


def environment_names(process: psutil.Process) -> set[str]:
    """The names in a process's environment; none for one that has exited meanwhile (a PostgreSQL backend)."""
    try:
        return set(process.environ())
    except psutil.NoSuchProcess:
        return set()


@pytest.mark.parametrize("backend, server", [("huey_postgres", "postgres"), ("huey_redis", "redis")])
def test_a_server_gets_only_the_environment_it_needs(backend, server, monkeypatch):
    monkeypatch.setenv("LAB_SOMETHING_OF_THE_TESTS", "not for servers")
    lab = Lab(queue_backend=backend)
    try:
        lab.queue.start_servers()
        server_process = psutil.Process(lab.processes[server].pid)
        assert PROCESS_TAG in environment_names(server_process)  # readable: the server did not overwrite it
        for process in [server_process, *server_process.children(recursive=True)]:
            names = environment_names(process)
            assert "LAB_SECRET_KEY" not in names and "LAB_SOMETHING_OF_THE_TESTS" not in names
            assert names <= {*SERVER_ENVIRONMENT, "PYTHONUNBUFFERED", PROCESS_TAG, "no_proxy", "NO_PROXY"}
    finally:
        lab.stop()


def test_process_environment_keeps_only_what_it_is_told(monkeypatch):
    monkeypatch.setenv("LAB_SECRET_KEY", "secret")
    monkeypatch.setenv("PATH", "/usr/bin")
    env = process_environment({"LAB_RUN_DIR": "/run"}, keep=SERVER_ENVIRONMENT)
    assert env["PATH"] == "/usr/bin" and "LAB_SECRET_KEY" not in env and "LAB_RUN_DIR" not in env


# -- loopback requests bypass an http_proxy set in the environment --------------------------------------------


DEAD_PROXY = "http://127.0.0.1:9"  # the discard port: nothing listens there


class Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(b"<title>reached</title>")

    def log_message(self, *args):
        pass


@pytest.fixture
def loopback_server():
    server = http.server.ThreadingHTTPServer((LOOPBACK, 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://{LOOPBACK}:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture
def dead_proxy(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, DEAD_PROXY)
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)


def test_a_lab_process_reaches_loopback_past_an_http_proxy(loopback_server, dead_proxy, tmp_path):
    """urllib in a process the lab starts (the site's provider check is one) honours http_proxy: its loopback
    requests must still reach loopback."""
    script = f"import urllib.request\nprint(urllib.request.urlopen({loopback_server!r}, timeout=5).status)\n"
    process = ManagedProcess("client", [sys.executable, "-c", script], tmp_path / "client.log").start()
    process.popen.wait(30)
    process.stop()
    assert process.log_text().strip() == "200", process.log_text()


def test_the_provider_check_asks_the_provider_directly_past_an_http_proxy(dead_proxy, settings):
    """The ledger's provider check decides whether an email is sent twice: it must get the answer even when the
    environment names a proxy and no no_proxy (as in a process the lab did not start)."""
    import urllib.request

    from helpers.stack.smtp_sink import serve_status
    from labsite import ledger

    port = free_port()
    server = serve_status({"<sent@tasks-lab.test>"}, port)
    settings.LAB_PROVIDER_STATUS_URL = f"http://{LOOPBACK}:{port}/messages"
    urllib.request.install_opener(None)  # urlopen's opener reads the environment again, as in a new process
    try:
        assert ledger.provider_accepted("<sent@tasks-lab.test>", timeout_s=5) is True
        assert ledger.provider_accepted("<never@tasks-lab.test>", timeout_s=5) is False
    finally:
        server.shutdown()
        server.server_close()
        urllib.request.install_opener(None)


def test_the_browser_probe_reaches_loopback_past_an_http_proxy(loopback_server, dead_proxy):
    from helpers.instruments import browser

    with browser.chromium() as context:
        page = context.new_page()
        page.goto(loopback_server, timeout=15_000)
        assert page.title() == "reached"


def test_loopback_joins_a_users_own_no_proxy(monkeypatch):
    monkeypatch.setenv("no_proxy", "intranet.example")
    monkeypatch.delenv("NO_PROXY", raising=False)
    env = process_environment()
    assert env["no_proxy"].split(",") == ["intranet.example", "127.0.0.1", "localhost", "::1"]
    assert env["NO_PROXY"].split(",") == ["127.0.0.1", "localhost", "::1"]
