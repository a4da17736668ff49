import os
import tempfile

import pytest

# Under pytest-xdist (`make test` runs two workers), each worker has a temporary folder of its own, so what a test
# finds by its folder (a browser probe's Chromium profile) is its own and not the other worker's.
# Others may pass through it (not list it), as through /tmp: PostgreSQL runs as its own user.
if worker := os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["TMPDIR"] = tempfile.mkdtemp(prefix=f"tasks-lab-{worker}-")
    os.chmod(os.environ["TMPDIR"], 0o711)
    tempfile.tempdir = None

# Run folders the tests create (the Lab's) go to a throwaway place, not data/runs/.
os.environ.setdefault("LAB_RUNS_DIR", tempfile.mkdtemp(prefix="tasks-lab-runs-"))


@pytest.fixture
def huey_queue():
    """The real SqliteHuey of the settings, emptied before and after each test."""
    from huey.contrib.djhuey import HUEY

    HUEY.flush()
    yield HUEY
    HUEY.flush()


# Servers, the browser probe and its Chromium (whose profile folder is in every one of its command lines).
LAB_SERVER_MARKERS = ("helpers.stack.smtp_sink", "run_huey", "reconcile_jobs", "labsite.wsgi", "labsite.asgi",
                      "helpers.instruments.browser", "helpers.instruments.loadgen", "helpers.instruments.client",
                      "helpers.instruments.enqueuer", "tasks-lab-chromium-", "redis-server",
                      # the queue backends' servers and workers (helpers.stack.queues)
                      "/bin/postgres -D", "db_worker", "rqworker", "celery -A labsite", "worker_pool.py")


def lab_servers_running(since: float, runs_dir: str | None = None) -> list[str]:
    """The lab's processes started since `since` by this test session: those that carry its LAB_RUNS_DIR in their
    environment or their command line (another checkout's tests or benchmarks, running beside, are not ours)."""
    import psutil

    runs_dir = runs_dir or os.environ["LAB_RUNS_DIR"]
    found = []
    for proc in psutil.process_iter(["cmdline", "create_time", "pid"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if proc.info["create_time"] < since or not any(m in cmdline for m in LAB_SERVER_MARKERS):
            continue
        try:
            ours = runs_dir in cmdline or proc.environ().get("LAB_RUNS_DIR") == runs_dir
        except (psutil.AccessDenied, psutil.NoSuchProcess):
            ours = runs_dir in cmdline
        if ours:
            found.append(f"{proc.info['pid']}: {cmdline[:120]}")
    return found


def pytest_sessionstart(session):
    import time

    session.config._lab_started_at = time.time() - 1


def pytest_sessionfinish(session, exitstatus):
    """No process the lab started may outlive the test session: that would be an orphan. Under pytest-xdist the
    controller checks, once every worker has finished (a worker would see the other's processes)."""
    import time

    if hasattr(session.config, "workerinput"):
        return

    deadline = time.time() + 10  # a kernel's atexit may still be stopping its lab
    while (left := lab_servers_running(session.config._lab_started_at)) and time.time() < deadline:
        time.sleep(0.2)
    if left:
        print("\nlab processes left running after the tests:\n  " + "\n  ".join(left))
        session.exitstatus = 1
