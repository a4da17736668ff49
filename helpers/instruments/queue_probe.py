"""The queue seen from outside: its depth sampled over time, through the backend's own reader (lab.queue, any
backend of helpers.stack.queues), and the drain rate read off those samples.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from helpers.stack.queues import QueueBackend


class QueueDepthSampler:
    """Samples the number of tasks waiting in the queue every `interval_s`, in a thread, while in the block:

        with QueueDepthSampler(lab.queue) as sampler:
            ...
        sampler.frame()  # columns t (epoch s), depth
    """

    def __init__(self, queue: QueueBackend, interval_s: float = 0.01):
        self.queue = queue
        self.interval_s = interval_s
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="queue-depth-sampler", daemon=True)

    def _run(self) -> None:
        with self.queue.depth_reader() as read_depth:
            next_at = time.monotonic()
            while not self._stop.is_set():
                depth = read_depth()
                self.samples.append((time.time(), depth))
                next_at += self.interval_s
                self._stop.wait(max(0.0, next_at - time.monotonic()))
            # the depth as the block ends: a queue seen empty by the block (drained) is empty in the samples too,
            # even when its fall came between two samples
            self.samples.append((time.time(), read_depth()))

    def __enter__(self) -> QueueDepthSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.samples, columns=["t", "depth"])


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
