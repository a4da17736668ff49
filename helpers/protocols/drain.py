"""Drain: a queue filled while its workers are stopped, then emptied by them, the depth sampled every 5 ms; the rate
is read off the depth (helpers.instruments.queue_probe.drain_rate: 90 % to 10 % of the peak)."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from helpers.instruments import enqueuer, queue_semantics
from helpers.instruments.queue_probe import QueueDepthSampler, drain_rate
from helpers.protocols.consumers import ensure_consumers, has_workers
from helpers.stack import Lab


def sampled(lab: Lab, timeout_s: float = 120.0, **consumer_changes) -> pd.DataFrame:
    """Start the lab's workers (with `consumer_changes` to its config) and sample the queue's depth until it is
    empty: one row per sample (t epoch s, depth)."""
    with QueueDepthSampler(lab.queue, 0.005) as sampler:
        lab.start_consumer(**consumer_changes)
        lab.wait_until_drained(timeout=timeout_s)
        time.sleep(0.05)
    return sampler.frame()


@dataclass
class EnqueueDrain:
    enqueue_us: pd.Series
    drain_tasks_per_s: float  # read once every consumer process is up (NaN if the queue was empty by then)
    depth: pd.DataFrame
    queued_when_all_up: int  # what was left to measure the rate on
    enqueued_total: int  # tasks enqueued, over every attempt


@dataclass
class _Drained:
    filled: object  # what `fill` returned for the attempt measured
    count: int  # the tasks of the attempt measured
    rate: float
    depth: pd.DataFrame
    left: int
    enqueued_total: int


def _fill_and_drain(lab: Lab, count: int, fill: Callable[[int], object], retries: int, **consumer_changes
                    ) -> _Drained:
    """With the workers stopped, `fill(count)` enqueues `count` no-op tasks; then the workers start (with
    `consumer_changes`) and the queue's depth is sampled until it is empty.

    Several consumer processes start side by side, not at one instant, and on a busy machine the first ones up can
    empty the queue before the last is ready: the rate counts only once all are up, and when less than a quarter of
    the tasks was left by then, the drain is made again with twice as many (up to `retries` times)."""
    lab.stop_consumer()
    filled = fill(count)
    depth = sampled(lab, **consumer_changes)
    all_up = depth[depth["t"] >= lab.consumers_ready_at]
    left = int(all_up["depth"].iloc[0]) if len(all_up) else 0
    if left < count / 4 and retries > 0:
        again = _fill_and_drain(lab, 2 * count, fill, retries - 1, **consumer_changes)
        return replace(again, enqueued_total=again.enqueued_total + count)
    return _Drained(filled, count, drain_rate(all_up) if len(all_up) else float("nan"), depth, left, count)


def enqueue_and_drain(lab: Lab, count: int, workers: int, worker_type: str, api: str = "huey",
                      retries: int = 2, **consumer_changes) -> EnqueueDrain:
    """Enqueue `count` no-op tasks back to back with the consumer stopped (each enqueue timed, through `api`: native
    djhuey or django.tasks), then start the consumer (with `consumer_changes`) and time the queue emptying, the rate
    read once every worker is up (_fill_and_drain)."""

    def fill(n: int) -> pd.Series:
        return enqueuer.enqueue(lab.django_env(), enqueuer.EnqueuePlan("noop", [0.0] * n, api))["enqueue_us"]

    drained = _fill_and_drain(lab, count, fill, retries, consumer_workers=workers, consumer_worker_type=worker_type,
                              **consumer_changes)
    return EnqueueDrain(drained.filled, drained.rate, drained.depth, drained.left, drained.enqueued_total)


PACED_DRAIN_S = 5.0  # a slow backend's next drain is cut to about this long at the rate just read
PACED_DRAIN_MIN = 100  # ... and never below this many tasks


def next_count(count: int, drained: _Drained) -> int:
    """The task count of the next drain: the grown count when the last one had to grow (the first workers up emptied
    the queue), else `count` cut to PACED_DRAIN_S at the last rate (RQ's 34 tasks/s took 15 s for 500, where 5 s
    reads the rate as well), never below PACED_DRAIN_MIN."""
    if drained.count > count or not np.isfinite(drained.rate):
        return drained.count
    return int(min(count, max(PACED_DRAIN_MIN, drained.rate * PACED_DRAIN_S)))


def drain_order(workers: tuple[int, ...], own: int) -> list[int]:
    """The worker counts in the order they drain: the lab's own count last, so that no restart restores it."""
    return sorted(workers, key=lambda n: n == own)


def by_concurrency(lab: Lab, count: int, workers: tuple[int, ...] = (1, 2, 4), retries: int = 2) -> pd.DataFrame:
    """Per worker count n: `count` no-op tasks enqueued through the lab's own API (queue_semantics.enqueue_noop) with
    its workers stopped, then emptied by its workers started with consumer_workers=n (threads or processes, as the
    lab's config and the backend's worker have it), the rate read once every worker is up (_fill_and_drain). The lab's
    own count goes last, so that its workers need no restart afterwards (each restart of Celery's took seconds), and
    each next n starts from the count next_count() gives. One row per n, by n: workers, tasks, drain_per_s (NaN
    without workers), queued_when_all_up, enqueued_total. The lab's own worker count is restored afterwards."""
    if not has_workers(lab):
        return pd.DataFrame({"workers": list(workers), "tasks": 0, "drain_per_s": np.nan, "queued_when_all_up": 0,
                             "enqueued_total": 0})
    own = lab.config.consumer_workers
    rows = []
    try:
        for n in drain_order(workers, own):
            drained = _fill_and_drain(lab, count, lambda k: queue_semantics.enqueue_noop(lab, k), retries,
                                      consumer_workers=n)
            rows.append({"workers": n, "tasks": drained.count, "drain_per_s": drained.rate,
                         "queued_when_all_up": drained.left, "enqueued_total": drained.enqueued_total})
            count = next_count(count, drained)
    finally:
        ensure_consumers(lab, consumer_workers=own)
    return pd.DataFrame(rows).sort_values("workers", ignore_index=True)


def through_each_api(labs: dict[str, Lab], count: int, tuned: bool = True) -> pd.DataFrame:
    """Per lab in turn: its workers stopped, `count` no-op tasks enqueued through its own API
    (queue_semantics.enqueue_noop, from a process of its own; every lab at once), then its workers started again
    (`tuned`: with the backend's tuning knob, which they keep; a worker never idles on a full queue, so it changes
    nothing here and saves a restart). NaN where there is no worker."""

    def fill(lab: Lab) -> str | None:
        lab.stop_consumer()
        return str(queue_semantics.enqueue_noop(lab, count))

    workers = {b: has_workers(lab) for b, lab in labs.items()}  # before their workers stop
    with ThreadPoolExecutor(len(labs)) as pool:
        filled = dict(zip(labs, pool.map(lambda b: fill(labs[b]) if workers[b] else None, labs), strict=True))
    rows = []
    for backend, lab in labs.items():
        row = {"backend": backend, "tasks": count, "drain_per_s": np.nan, "queued_at_start": 0,
               "enqueue": filled[backend]}
        if workers[backend]:
            depth = sampled(lab, 300.0, **(lab.queue.tuned_worker_config if tuned else {}))
            row["queued_at_start"] = int(depth["depth"].max()) if len(depth) else 0
            row["drain_per_s"] = drain_rate(depth) if row["queued_at_start"] > 0 else np.nan
        rows.append(row)
    return pd.DataFrame(rows).set_index("backend")
