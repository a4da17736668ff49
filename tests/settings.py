"""The site's settings, with its SQLite files in a throwaway folder (set before labsite.settings reads it)."""

import os
import tempfile

os.environ.setdefault("LAB_RUN_DIR", tempfile.mkdtemp(prefix="tasks-lab-tests-"))

from labsite.settings import *  # noqa: E402,F403
