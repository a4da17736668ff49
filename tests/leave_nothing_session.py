"""A small test session that makes what a `make test` session makes: run folders (a PostgreSQL lab's cluster among
them), pytest's tmp_path, the site's test database, and a process that inherits the session's environment as a
notebook kernel does. tests/test_leave_nothing.py runs it in a pytest of its own and checks that nothing is left.
Not collected by `make test` (its name is not test_*.py)."""

import subprocess
import sys
import tempfile

import pytest

from helpers import REPO_ROOT
from helpers.stack import Lab


@pytest.mark.django_db
def test_the_site_database_and_tmp_path(tmp_path):
    (tmp_path / "made").write_text("by the test")
    assert tempfile.mkdtemp()


def test_a_postgresql_lab():
    with Lab(queue_backend="huey_postgres", web_workers=1, consumer_workers=1, smtp_delay_s=0) as lab:
        assert lab.http.post("/email/deferred/", {"to": "left@example.test"}).status == 202
        lab.mail.wait_for_emails(1, timeout=30)


def test_a_process_that_inherits_the_environment_as_a_kernel_does():
    script = "import tempfile\nfrom helpers import runs\nruns.new_run_dir('kernel')\ntempfile.mkdtemp()\n"
    subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, check=True)
