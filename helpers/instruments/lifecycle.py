"""Each task's life, read from Huey's own stats recorder (`huey.contrib.djhuey.stats`, LabConfig
record_task_events=True): one row per task with the wall-clock time of each state.

    enqueued   Huey's `enqueued` signal, in the process that enqueued it (a web worker, a helper), just before
               the SQLite insert
    dequeued   the lab's `dequeued` signal (labsite.huey_classes): the worker's dequeue transaction deleted the row,
               so the task has left the queue; "pickup"
    executing  Huey's `executing` signal: about to run (after unpickling and the revoke/expiry checks); "start"
    finished   the first terminal signal (complete, error, ...): "finish"

Queue wait = dequeued - enqueued; end-to-end = finished - enqueued. All processes share the machine's clock.
The recorder buffers events and flushes them every flush_interval (0.2 s here) from each process: a reader
waits until every task it expects has finished in the file (`wait_for_tasks`).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
from huey import signals

STATES = ("enqueued", "dequeued", "executing", "finished")
FINISH_SIGNALS = (signals.SIGNAL_COMPLETE, signals.SIGNAL_ERROR, signals.SIGNAL_CANCELED,
                  signals.SIGNAL_INTERRUPTED, signals.SIGNAL_EXPIRED, signals.SIGNAL_REVOKED,
                  signals.SIGNAL_TIMEOUT, signals.SIGNAL_LOCKED)
SIGNAL_STATES = {signals.SIGNAL_ENQUEUED: "enqueued", "dequeued": "dequeued",
                 signals.SIGNAL_EXECUTING: "executing", **{s: "finished" for s in FINISH_SIGNALS}}
EVENT_COLUMNS = ["ts", "task_id", "task", "signal", "duration", "error"]


def read_events(stats_file: Path, since: float = 0.0) -> pd.DataFrame:
    """Every recorded event at or after `since` (epoch seconds), oldest first."""
    if not Path(stats_file).exists():
        return pd.DataFrame(columns=EVENT_COLUMNS)
    with sqlite3.connect(f"file:{stats_file}?mode=ro", uri=True, timeout=10) as conn:
        try:
            rows = conn.execute(f"select {', '.join(EVENT_COLUMNS)} from huey_event where ts >= ? order by ts, id",
                                (since,)).fetchall()
        except sqlite3.OperationalError as exc:  # the table is made by the first process that starts recording
            if "no such table" in str(exc):
                return pd.DataFrame(columns=EVENT_COLUMNS)
            raise
    return pd.DataFrame(rows, columns=EVENT_COLUMNS)


def lifecycles(events: pd.DataFrame) -> pd.DataFrame:
    """One row per task: the time of each state (first occurrence), how often each state was recorded, the
    outcome, and the derived intervals in milliseconds."""
    events = events.assign(state=events["signal"].map(SIGNAL_STATES)).dropna(subset=["state"])
    times = events.pivot_table(index="task_id", columns="state", values="ts", aggfunc="min")
    counts = events.pivot_table(index="task_id", columns="state", values="ts", aggfunc="count")
    frame = pd.DataFrame(index=times.index)
    frame["task"] = events.groupby("task_id")["task"].first().str.rsplit(".", n=1).str[-1]
    for state in STATES:
        frame[state] = times[state] if state in times else float("nan")
        frame[f"n_{state}"] = counts[state].fillna(0).astype(int) if state in counts else 0
    finished = events[events["state"] == "finished"].groupby("task_id")["signal"].first()
    frame["outcome"] = finished.reindex(frame.index)
    frame["queue_wait_ms"] = (frame["dequeued"] - frame["enqueued"]) * 1e3
    frame["pickup_to_start_ms"] = (frame["executing"] - frame["dequeued"]) * 1e3
    frame["run_ms"] = (frame["finished"] - frame["executing"]) * 1e3
    frame["end_to_end_ms"] = (frame["finished"] - frame["enqueued"]) * 1e3
    return frame.sort_values("enqueued").reset_index()


def wait_for_tasks(stats_file: Path, since: float, expected: int | None = None,
                   task_ids: Iterable[str] | None = None, timeout: float = 120.0) -> pd.DataFrame:
    """Lifecycles of the tasks enqueued since `since`, once every one of them has finished (and at least
    `expected` were enqueued, or every id in `task_ids` is there)."""
    wanted = set(task_ids) if task_ids is not None else None
    deadline = time.monotonic() + timeout
    while True:
        frame = lifecycles(read_events(stats_file, since))
        frame = frame[frame["n_enqueued"] > 0]
        if wanted is not None:
            frame = frame[frame["task_id"].isin(wanted)]
        enough = len(frame) >= (len(wanted) if wanted is not None else expected or 0)
        if enough and frame["finished"].notna().all():
            return frame.reset_index(drop=True)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{int(frame['finished'].notna().sum())} of {len(frame)} recorded tasks finished "
                               f"(expected {len(wanted) if wanted is not None else expected}) in {timeout} s")
        time.sleep(0.1)
