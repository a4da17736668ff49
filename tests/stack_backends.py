"""Which queue backends the real-stack tests start, in quick mode and in full. Every backend of notebook 07's matrix
(helpers.stack.queues.names()) always; of the backends it does not cover yet, quick mode (LAB_QUICK=1, `make test`)
starts one per new server and queue API, and tests/test_backend_settings.py checks every other one's settings in a
fresh process, so each backend is in at least one test of `make test` while the new ones add under a minute. Also
what a run folder must look like once a lab ran in it (not_private). Not collected (its name is not test_*.py)."""

import os
import stat
from pathlib import Path

from helpers.runs.params import quick_mode
from helpers.stack.queues import all_names, names

# RabbitMQ and the Dramatiq API; procrastinate's API on PostgreSQL. The Tasks-framework backends go through the API
# djtasks_db_* exercise in quick mode already (vtasks_valkey, the cheapest of them to add, costs ~16 s more).
QUICK_NEW = ("dramatiq_rabbitmq", "procrastinate_postgres")


def on_the_stack() -> list[str]:
    """The backends the real-stack tests start in this mode."""
    if not quick_mode():
        return all_names()
    return [*names(), *(name for name in all_names() if name in QUICK_NEW)]


def settings_only() -> list[str]:
    """The backends this mode starts no lab for: their settings are checked instead."""
    return [name for name in all_names() if name not in on_the_stack()]


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
