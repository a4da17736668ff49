"""Every queue backend of helpers.stack.queues on the real stack: one deferred email reaches the lab's SMTP server.

Parametrized over every backend in full mode, so a backend added later is tested the moment its module exists; in quick
mode over notebook 07's matrix (the others stop and leave nothing in tests/test_site_every_backend.py).
"""

import contextlib
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path

import psutil
import psycopg
import pytest

from helpers.stack import Lab, postgres_server, server_user
from helpers.stack.processes import LOOPBACK, port_is_bound
from tests.stack_backends import matrix_in_quick_mode

pytestmark = pytest.mark.stack
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="PostgreSQL changes user only when started as root (as in CI)")


def family(lab) -> list[psutil.Process]:
    """Every process the lab runs now (servers, workers and their children)."""
    found = []
    for pid in lab.pids():
        with contextlib.suppress(psutil.NoSuchProcess):
            found.append(psutil.Process(pid))
    return found


SERVER_FOLDERS = ("pg", "rabbitmq")  # PostgreSQL's and RabbitMQ's own folders, their server user's as root


def not_private(run_dir: Path) -> list[str]:
    """Entries of the run folder that another user could read or that are not ours, but a server's own folder
    (which belongs to the server's user)."""
    found = []
    for path in run_dir.rglob("*"):
        if any((run_dir / folder) in (path, *path.parents) for folder in SERVER_FOLDERS):
            continue
        info = path.lstat()
        if info.st_uid != os.geteuid() or stat.S_IMODE(info.st_mode) & 0o077:
            found.append(f"{oct(stat.S_IMODE(info.st_mode))} uid {info.st_uid} {path.relative_to(run_dir)}")
    return found


def still_running(processes: list[psutil.Process]) -> list[str]:
    """The ones still alive: is_running() compares the creation time, so a recycled pid does not count."""
    return [f"{p.pid}" for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


@pytest.mark.parametrize("backend", matrix_in_quick_mode())
def test_one_deferred_email_arrives_and_the_lab_leaves_nothing_behind(backend, monkeypatch):
    # in a private rerun folder, as `python -m helpers run` makes one: deep (a unix socket's path could not be), and
    # above the kernels' runs root
    from helpers import runs

    rerun = runs.runs_root() / f"20261125T230243-rerun-{backend}"
    (rerun / "experiments").mkdir(parents=True, mode=0o700)
    monkeypatch.setenv("LAB_RUNS_AREA", str(runs.runs_area()))
    monkeypatch.setenv("LAB_RUNS_DIR", str(rerun / "experiments"))
    lab = Lab(queue_backend=backend, web_workers=1, consumer_workers=1, smtp_delay_s=0,
              run_dir=runs.new_run_dir("07-which-queue") / backend).start()
    try:
        response = lab.http.post("/email/deferred/", {"to": f"{backend}@example.test"})
        assert response.status == 202, response.body
        assert json.loads(response.body)["task_id"]
        lab.mail.wait_for_emails(1, timeout=30)
        assert list(lab.mail.deliveries()["rcpt_tos"].iloc[0]) == [f"{backend}@example.test"]
        assert lab.queue_depth() == 0
        listening = lab.listening_sockets()
        # loopback only: IPv4, and IPv6 where a server adds it (Erlang's epmd, beside RabbitMQ, always does)
        assert listening and LOOPBACK in listening.values() and set(listening.values()) <= {LOOPBACK, "::1"}, \
            listening
        processes = family(lab)
        assert not_private(lab.run_dir) == []
    finally:
        lab.stop()
    assert not lab.processes
    assert still_running(processes) == []
    assert [port for port in listening if port_is_bound(port)] == []


# -- PostgreSQL as root: the server's user reaches its own folder, nothing else ------------------------------------


@pytest.fixture(scope="module")
def postgres():
    """The run's PostgreSQL server alone (no site, no workers), in a lab's run folder."""
    lab = Lab(queue_backend="huey_postgres")
    (lab.run_dir / "secret.txt").write_text("the lab's own")  # made before the server, with the default umask
    lab.queue.start_servers()
    yield lab.queue.postgres
    lab.stop()


@as_root
def test_as_root_the_server_runs_as_postgres_in_its_own_folder_and_the_rest_stays_private(postgres):
    run_dir = postgres.lab.run_dir
    server = psutil.Process(postgres.lab.processes["postgres"].pid)
    assert server.username() == postgres_server.SERVER_USER
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o711 and run_dir.stat().st_uid == 0
    assert postgres.folder.owner() == postgres_server.SERVER_USER
    assert stat.S_IMODE(postgres.folder.stat().st_mode) == 0o700
    assert postgres.data_dir.owner() == postgres_server.SERVER_USER
    assert stat.S_IMODE(postgres.passfile.stat().st_mode) == 0o600 and postgres.passfile.owner() == "root"
    assert not_private(run_dir) == []
    assert not (postgres.folder / "initdb-password").exists()


def test_the_password_is_on_no_command_line_and_required(postgres):
    password = postgres.passfile.read_text().strip().rsplit(":", 1)[1]
    for pid in postgres.lab.pids():
        with contextlib.suppress(psutil.NoSuchProcess):
            assert password not in " ".join(psutil.Process(pid).cmdline())
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(f"host={LOOPBACK} port={postgres.port} dbname=lab user=lab password=wrong", connect_timeout=5)
    with postgres.connect() as conn:
        assert conn.execute("select current_user").fetchone() == ("lab",)


def test_the_server_listens_on_loopback_only_and_on_no_unix_socket(postgres):
    assert set(postgres.lab.listening_sockets().items()) == {(postgres.port, LOOPBACK)}
    server = psutil.Process(postgres.lab.processes["postgres"].pid)
    assert [c.laddr for c in server.net_connections(kind="unix") if ".s.PGSQL." in (c.laddr or "")] == []


@pytest.fixture
def open_folder():
    """A folder /tmp's children can be reached through (pytest's own tmp_path sits under 0700 folders)."""
    folder = Path(tempfile.mkdtemp(prefix="tasks-lab-way-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


@as_root
def test_the_way_to_the_run_folder_opens_only_inside_the_runs_area(open_folder):
    area = open_folder / "runs"
    run_dir = area / "notebook" / "lab"
    run_dir.mkdir(parents=True)
    for folder in (area, area / "notebook", run_dir):
        folder.chmod(0o700)  # as the lab makes its run folders
    server_user.open_the_way(run_dir, area)
    assert [oct(stat.S_IMODE(p.stat().st_mode)) for p in (area, area / "notebook", run_dir)] == ["0o711"] * 3
    open_folder.chmod(0o700)  # above the runs area: not ours to open
    with pytest.raises(PermissionError, match=str(open_folder)):
        server_user.open_the_way(run_dir, area)
    assert stat.S_IMODE(open_folder.stat().st_mode) == 0o700


@as_root
def test_a_reruns_private_folder_is_opened_for_its_notebooks_postgresql(open_folder, monkeypatch):
    """`python -m helpers run` makes a private rerun folder and points its kernels' LAB_RUNS_DIR inside it: the
    way still opens, because the rerun says where the lab's runs area begins (LAB_RUNS_AREA)."""
    from helpers import runs

    area = open_folder / "runs"
    run_dir = area / "20261125-rerun" / "experiments" / "07-which-queue" / "djtasks_db_postgres"
    run_dir.mkdir(parents=True)
    for folder in [run_dir, *run_dir.parents][:4]:
        folder.chmod(0o700)
    monkeypatch.setenv("LAB_RUNS_DIR", str(area / "20261125-rerun" / "experiments"))
    monkeypatch.setenv("LAB_RUNS_AREA", str(area))
    server_user.open_the_way(run_dir, runs.runs_area())
    assert stat.S_IMODE((area / "20261125-rerun").stat().st_mode) == 0o711
