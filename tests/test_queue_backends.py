"""A queue backend's PostgreSQL server as root: it runs as Debian's `postgres` user in its own folder, the rest of the
run folder stays private, and the way to a rerun's folder opens only inside the runs area. (Every backend on the
real stack, each in a rerun's private folder: tests/test_site_every_backend.py.)"""

import contextlib
import os
import shutil
import stat
import tempfile
from pathlib import Path

import psutil
import psycopg
import pytest

from helpers.stack import Lab, postgres_server, server_user
from helpers.stack.processes import LOOPBACK
from tests.stack_backends import not_private

pytestmark = pytest.mark.stack
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="PostgreSQL changes user only when started as root (as in CI)")


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
