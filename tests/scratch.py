"""The test session's scratch folder: every temporary file the session makes (run folders and their PostgreSQL
clusters, the site's databases, pytest's tmp_path, browser profiles, the notebook kernels' run folders) lands
in it, and the session removes it when it ends, so nothing it made is left outside the clone."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from helpers import REPO_ROOT
from helpers.stack.server_user import passable_by_others

SCRATCH = "LAB_TESTS_SCRATCH"  # the session's folder, inherited by its workers and every process they start
OWNER = "LAB_TESTS_SCRATCH_OWNER"  # the pid of the process that made it, the one that removes it


def scratch_base() -> Path:
    """The clone's git-ignored .tmp/, unless PostgreSQL, run as its own user when we are root, could not pass
    through a folder above it to its run folders: then the system's temporary folder."""
    if os.geteuid() != 0 or all(passable_by_others(folder) for folder in [REPO_ROOT, *REPO_ROOT.parents]):
        return REPO_ROOT / ".tmp"
    return Path(tempfile.gettempdir())


def use_as_temporary_folder(folder: Path) -> None:
    """This process's temporary files, and those of the processes it starts, go into `folder`."""
    os.environ["TMPDIR"] = str(folder)
    tempfile.tempdir = None


def scratch_folder() -> Path:
    """This session's scratch folder, made by its first process (mode 0711: others may pass through it, as
    PostgreSQL's user must, not list it), which also becomes that process's temporary folder."""
    if SCRATCH not in os.environ:
        base = scratch_base()
        base.mkdir(exist_ok=True)
        base.chmod(base.stat().st_mode | 0o011)
        folder = Path(tempfile.mkdtemp(prefix="session-", dir=base))
        folder.chmod(0o711)
        os.environ[SCRATCH] = str(folder)
        os.environ[OWNER] = str(os.getpid())
        use_as_temporary_folder(folder)
    return Path(os.environ[SCRATCH])


def worker_folder(name: str) -> Path:
    """A folder of the scratch folder that becomes this process's temporary folder (a pytest-xdist worker's: what a
    test finds by its folder, a browser probe's Chromium profile, is its own and not the other worker's)."""
    folder = scratch_folder() / name
    folder.mkdir(mode=0o711, exist_ok=True)
    use_as_temporary_folder(folder)
    return folder


def remove_scratch_folder() -> bool:
    """Remove the scratch folder, PostgreSQL's files included (root may), if this process made it."""
    if os.environ.get(OWNER) != str(os.getpid()):
        return False
    shutil.rmtree(os.environ[SCRATCH], ignore_errors=True)
    return True
