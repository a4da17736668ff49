"""Probes of the queue and its consumer from outside: queue depth sampled over time (straight from Huey's SQLite
file, read-only; in WAL mode a reader never blocks the consumer or an enqueuer; or LLEN of Huey's Redis list,
when the queue is a `redis://` URL: `lab.queue_location` gives either) and the CPU the consumer burns.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import psutil


class QueueDepthSampler:
    """Samples the number of tasks waiting in the queue every `interval_s`, in a thread, while in the block:

        with QueueDepthSampler(lab.huey_file) as sampler:
            ...
        sampler.frame()  # columns t (epoch s), depth
    """

    def __init__(self, queue: Path | str, interval_s: float = 0.01):
        self.queue = queue
        self.interval_s = interval_s
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="queue-depth-sampler", daemon=True)

    def _run(self) -> None:
        with depth_reader(self.queue) as read_depth:
            next_at = time.monotonic()
            while not self._stop.is_set():
                depth = read_depth()
                self.samples.append((time.time(), depth))
                next_at += self.interval_s
                self._stop.wait(max(0.0, next_at - time.monotonic()))

    def __enter__(self) -> QueueDepthSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.samples, columns=["t", "depth"])


@contextlib.contextmanager
def depth_reader(queue: Path | str) -> Iterator[Callable[[], int]]:
    """A function that reads the number of queued tasks over one open connection: `queue` is Huey's SQLite
    file, or a redis:// URL (Huey's list in that server)."""
    if isinstance(queue, str) and queue.startswith("redis://"):
        from helpers import redis_server

        with redis_server.client(queue) as conn:
            yield lambda: int(conn.llen(redis_server.QUEUE_KEY))
        return
    with sqlite3.connect(f"file:{queue}?mode=ro", uri=True, timeout=5) as conn:
        yield lambda: conn.execute("select count(*) from task").fetchone()[0]


def drain_rate(depth: pd.DataFrame, high: float = 0.9, low: float = 0.1) -> float:
    """Tasks per second the queue emptied at, from the samples between `high` and `low` of its peak depth
    (leaves out the consumer's start-up and the last stragglers)."""
    peak_at = depth["depth"].idxmax()
    falling = depth.loc[peak_at:]
    peak = falling["depth"].iloc[0]
    upper = falling[falling["depth"] <= high * peak].iloc[0]
    lower = falling[falling["depth"] <= low * peak].iloc[0]
    if lower["t"] <= upper["t"]:
        return float("nan")
    return float((upper["depth"] - lower["depth"]) / (lower["t"] - upper["t"]))


def process_tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its live children."""
    total = 0.0
    root = psutil.Process(pid)
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def idle_cpu_percent(pids: list[int], seconds: float = 5.0) -> float:
    """CPU use of idle process trees, in percent of one core, over `seconds` of wall time."""
    started_cpu, started = sum(map(process_tree_cpu_s, pids)), time.monotonic()
    time.sleep(seconds)
    return 100.0 * (sum(map(process_tree_cpu_s, pids)) - started_cpu) / (time.monotonic() - started)
