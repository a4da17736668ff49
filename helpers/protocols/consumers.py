"""A lab's workers as the procedures see them: whether it has any, their processes, and restarting them only when
their settings change."""

from __future__ import annotations

from helpers.stack import Lab


def has_workers(lab: Lab) -> bool:
    """False for a backend whose tasks run inside the request (no worker process to pick up, drain or kill)."""
    return bool(lab.consumer_names())


def worker_pids(lab: Lab) -> list[int]:
    return [lab.processes[name].pid for name in lab.consumer_names()]


def ensure_consumers(lab: Lab, **changes) -> None:
    """Restart the lab's consumers with `changes` to its config, unless they already run with exactly those."""
    running = lab.consumer_names() and all(lab.processes[name].alive() for name in lab.consumer_names())
    if not running or any(getattr(lab.config, key) != value for key, value in changes.items()):
        lab.start_consumer(**changes)
