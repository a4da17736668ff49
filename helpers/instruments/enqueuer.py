"""Enqueue tasks straight into the site's queue from a process of its own, on a schedule, timing each enqueue.

The enqueuer is the site's code run outside the web server: it sets Django up with the lab's environment and
calls the very task functions the views call, natively (djhuey's `tasks.X(...)`) or through Django's Tasks API
(`.enqueue(...)`), as labsite.dispatch enqueues them. Sending at precomputed offsets makes arrivals open-loop: a slow
enqueue delays the next one's send, not its due time, and the lag is recorded. With `after_finish` each offset is
instead an idle gap after the previous task finished (read from the stats recorder), so no task overlaps the one
before.

    python -m helpers.instruments.enqueuer < plan.json     (see `enqueue`; helpers.instruments.plan_process)
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from helpers.instruments import plan_process

if TYPE_CHECKING:  # pandas only in the caller: the enqueuer process starts 0.3 s sooner without it
    import pandas as pd

COLUMNS = ["seq", "task_id", "due_at", "enqueued_at", "enqueue_us", "lag_ms", "error"]
KINDS = ("noop", "email", "thumbnail")
APIS = {"huey": "huey", "djtasks": "django_tasks"}  # a plan's api -> labsite.dispatch's name for it


@dataclass
class EnqueuePlan:
    kind: str  # "noop", "email" or "thumbnail"
    offsets_s: list[float]  # when each task is due, from the start; all 0 = back to back
    api: str = "huey"  # "huey" (native djhuey task) or "djtasks" (django.tasks on Huey's backend)
    source_image: str | None = None  # for "thumbnail": copied into the spool for every task
    recipient: str = "queued{i}@example.test"  # for "email"
    after_finish: bool = False  # offsets are gaps after the previous task finished (needs the stats recorder)
    keep_going: bool = False  # record a failed enqueue (its error, no task id) and go on, instead of stopping


def enqueue(env: dict[str, str], plan: EnqueuePlan, timeout: float = 600.0) -> pd.DataFrame:
    """Run the plan in a fresh process with the lab's environment; one row per task enqueued."""
    if plan.kind not in KINDS or plan.api not in APIS:
        raise ValueError(f"kind must be one of {KINDS} and api one of {APIS}")
    frame = plan_process.run_plan("helpers.instruments.enqueuer", asdict(plan), "enqueuer", env=env, timeout=timeout)
    return frame.reindex(columns=COLUMNS)


def task_caller(kind: str, api: str, plan: EnqueuePlan):
    """A function of the task's number that enqueues one task and returns its id (untimed set-up included)."""
    from labsite import dispatch, tasks, thumbnails

    if kind == "noop":
        job = tasks.NOOP
        arguments = lambda i: ()  # noqa: E731
    elif kind == "email":
        job = tasks.WELCOME_EMAIL
        arguments = lambda i: (plan.recipient.format(i=i),)  # noqa: E731
    else:
        job = tasks.THUMBNAIL
        suffix = "." + plan.source_image.rsplit(".", 1)[-1]

        def arguments(i):
            target = thumbnails.spool_dir() / f"queued-{time.time_ns()}-{i}{suffix}"
            shutil.copyfile(plan.source_image, target)
            return (str(target),)

    api = APIS[api]
    return arguments, lambda args: dispatch.enqueue(job, *args, api=api).task_id


def finished_at(task_id: str, timeout: float = 120.0) -> float:
    """When the recorder saw `task_id` finish (epoch seconds); waits for the event to be flushed."""
    from django.conf import settings

    from helpers.instruments import lifecycle

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = lifecycle.read_events(settings.HUEY_STATS["filename"], time.time() - timeout)
        done = events[(events["task_id"] == task_id) & events["signal"].isin(lifecycle.FINISH_SIGNALS)]
        if len(done):
            return float(done["ts"].iloc[0])
        time.sleep(0.02)
    raise TimeoutError(f"task {task_id} did not finish in {timeout} s")


def run(plan: dict) -> list[dict]:
    import django

    django.setup()
    plan = EnqueuePlan(**plan)
    arguments, call = task_caller(plan.kind, plan.api, plan)
    rows, start, task_id = [], time.time() + 0.05, None
    for seq, offset in enumerate(plan.offsets_s):
        args = arguments(seq)
        due = finished_at(task_id) + offset if plan.after_finish and task_id else start + offset
        wait = due - time.time()
        if wait > 0:
            time.sleep(wait)
        enqueued_at, began = time.time(), time.perf_counter()
        task_id, error = None, None
        try:
            task_id = call(args)
        except Exception as exc:  # e.g. SQLite's "database is locked" once its busy timeout has passed
            if not plan.keep_going:
                raise
            error = f"{type(exc).__name__}: {exc}"
        elapsed = time.perf_counter() - began
        rows.append({"seq": seq, "task_id": task_id, "due_at": due, "enqueued_at": enqueued_at,
                     "enqueue_us": elapsed * 1e6, "lag_ms": (enqueued_at - due) * 1e3, "error": error})
    return rows


if __name__ == "__main__":
    plan_process.serve_plan(run)
