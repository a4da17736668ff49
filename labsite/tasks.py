"""Huey tasks: thin wrappers that call the plain jobs, so both paths run one implementation."""

import time

from huey import signals
from huey.contrib.djhuey import HUEY, signal, task

from labsite import jobs, ledger, thumbnails  # noqa: F401 (ledger: the consumer registers its tasks from here)

RUNNING_KEY = "running:{}"


@task()
def send_welcome_email(to: str) -> dict:
    return jobs.send_welcome_email(to)


@task()
def make_thumbnail(source: str) -> dict:
    return thumbnails.make_thumbnail(source)


@task()
def do_nothing() -> None:
    return jobs.do_nothing()


@signal(signals.SIGNAL_EXECUTING)
def mark_running(signal_name, task_instance, exc=None):
    """Leaves a marker so the status endpoint can tell a running task from an unknown id."""
    HUEY.put(RUNNING_KEY.format(task_instance.id), time.time())
