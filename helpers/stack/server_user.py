"""Servers that refuse root (PostgreSQL) or should not have it (RabbitMQ) run as their Debian package's own system
user when the lab is root, as in CI: each in a folder of the run folder that belongs to that user (0700), the run
folder opened for passage only (0711: others may pass through it, not list it), every other file the lab's own.

The switch is `setpriv`, which execs the server in place, not `runuser`: runuser stays as the server's parent and
does not pass signals on, so the lab's stop would not reach the server.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import stat
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from helpers.stack.lab import Lab


def running_as_root() -> bool:
    return os.geteuid() == 0


def as_server_user(user: str, death_signal: int = signal.SIGTERM) -> list[str]:
    """The prefix that runs a command as `user` when we are root (nothing otherwise). setpriv execs the command in
    place and gives it a parent-death signal again (a change of user clears the lab's)."""
    if not running_as_root():
        return []
    return ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups",
            "--pdeathsig", signal.Signals(death_signal).name.removeprefix("SIG"), "--"]


def private_file(path: Path, text: str, owner: str | None = None) -> Path:
    """Write `text` into a new file only its owner may read (0600); `owner` hands it to that user."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    if owner is not None:
        user = pwd.getpwnam(owner)
        os.chown(path, user.pw_uid, user.pw_gid)
    return path


def passable_by_others(folder: Path) -> bool:
    return bool(folder.stat().st_mode & stat.S_IXOTH)


def open_the_way(run_dir: Path, lab_area: Path, user: str = "the server's") -> None:
    """Let a server's user pass through every folder down to the run folder, without listing any: the run folder
    and the folders between it and the lab's runs area (which the lab made 0700) get o+x; a folder above the runs
    area that is closed is not ours to open, so we say which."""
    run_dir = run_dir.resolve()
    lab_area = lab_area.resolve()
    run_dir.chmod(0o711)
    for folder in run_dir.parents:
        if passable_by_others(folder):
            continue
        if folder == lab_area or lab_area in folder.parents:
            folder.chmod(stat.S_IMODE(folder.stat().st_mode) | 0o011)
        else:
            raise PermissionError(f"a server runs as the {user!r} user, which cannot pass through {folder} "
                                  f"to reach {run_dir}: put the run folder under the lab's runs folder "
                                  f"({lab_area}) or allow passage (chmod o+x {folder})")


def server_folder(lab: Lab, folder: Path, user: str) -> Path:
    """Make `folder` (in the lab's run folder) the server's own: 0700, and, when we are root, `user`'s, with the way
    to it opened (after the lab's own files were made private)."""
    folder.mkdir(mode=0o700, exist_ok=True)
    if running_as_root():
        from helpers.runs import runs_area

        owner = pwd.getpwnam(user)
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        folder.chmod(0o700)
        lab.secure_files()  # before anyone may pass through the run folder
        open_the_way(lab.run_dir, runs_area(), user)
    return folder
