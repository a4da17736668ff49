import os

import pytest

from tests.scratch import remove_scratch_folder, scratch_folder, worker_folder

# Every temporary file of the session goes into its scratch folder, removed when the session ends. Under
# pytest-xdist (`make test` runs two workers) each worker has a temporary folder of its own in it.
if worker := os.environ.get("PYTEST_XDIST_WORKER"):
    worker_folder(worker)

# Run folders the tests create (the Lab's, the notebook kernels' that nbval starts: they inherit it) go there too,
# not to data/runs/.
if "LAB_RUNS_DIR" not in os.environ:
    (scratch_folder() / "runs").mkdir(mode=0o700, exist_ok=True)
    os.environ["LAB_RUNS_DIR"] = str(scratch_folder() / "runs")


NOTEBOOK_LANES = 2  # notebooks that may run at once: each drives a lab under load, and three starved the loads


def pytest_xdist_make_scheduler(config, log):
    """Under `--dist loadfile` (make test), each test file is still one unit of work (its labs are module-scoped),
    but the notebooks are NOTEBOOK_LANES units, even and odd numbers, each run in turn by one worker: a third worker
    then runs test files beside at most two notebooks."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class NotebookLanes(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = super()._split_scope(nodeid)  # the file, as loadfile has it
            if not path.endswith(".ipynb"):
                return path
            name = path.rsplit("/", 1)[-1]
            return f"notebooks-{int(name[:2]) % NOTEBOOK_LANES if name[:2].isdigit() else 0}"

    return NotebookLanes(config, log)


def pytest_collection_modifyitems(config, items):
    """The slow files first, so that under the Makefile's --no-loadscope-reorder the quick ones fill in at the end
    instead of one worker finishing a slow file alone: the notebooks, then the files that start real servers
    (marked stack), then the rest. Each file keeps its own order (module-scoped labs)."""
    def weight(item) -> int:
        if item.path.suffix == ".ipynb":
            return 0
        return 1 if item.get_closest_marker("stack") else 2

    by_file: dict = {}
    for item in items:
        by_file[item.path] = min(by_file.get(item.path, 2), weight(item))
    items.sort(key=lambda item: by_file[item.path])


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
                      "/bin/postgres -D", "db_worker", "rqworker", "celery -A labsite", "worker_pool.py",
                      "threadmill worker",
                      # the recipe's site (tests/test_recipe.py): its settings are in every command line
                      "tests.recipe_settings")


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


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    """No process the lab started may outlive the test session: that would be an orphan. Under pytest-xdist the
    controller checks, once every worker has finished (a worker would see the other's processes). Then the
    session's scratch folder goes."""
    import time

    if hasattr(session.config, "workerinput"):
        return

    deadline = time.time() + 10  # a kernel's atexit may still be stopping its lab
    while (left := lab_servers_running(session.config._lab_started_at)) and time.time() < deadline:
        time.sleep(0.2)
    if left:
        print("\nlab processes left running after the tests:\n  " + "\n  ".join(left))
        session.exitstatus = 1
    remove_scratch_folder()
