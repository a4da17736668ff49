"""The site's settings, with its SQLite files in a throwaway folder of the session's scratch folder (set before
labsite.settings reads it)."""

import os
import tempfile

from tests.scratch import scratch_folder

# One folder per test process: pytest-xdist's workers inherit the controller's environment, and two workers on
# one Huey file would take each other's tasks. A process a test starts inherits its worker's folder.
_owner = os.environ.get("PYTEST_XDIST_WORKER", "")
if "LAB_RUN_DIR" not in os.environ or os.environ.get("LAB_TESTS_RUN_DIR_OWNER", _owner) != _owner:
    os.environ["LAB_RUN_DIR"] = tempfile.mkdtemp(prefix="tasks-lab-tests-", dir=scratch_folder())
    os.environ["LAB_TESTS_RUN_DIR_OWNER"] = _owner

from labsite.settings import *  # noqa: E402,F403

# Every queue API's tasks in the test process, whatever the backend: the unit tests check each API's tables side by
# side (a lab's processes declare only their backend's API).
TASK_APIS = ("huey", "django_tasks", "celery", "dramatiq", "procrastinate")
