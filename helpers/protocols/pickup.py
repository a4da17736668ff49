"""Pickup after idle periods: how long a task arriving at an idle queue waits. Two intervals, never under one name:

    enqueue_to_start   the task's enqueue to its start, from Huey's stats recorder (Huey backends only; a worker's
                       poll interval shows whole in it): figures named `pickup_enqueue_to_start_*`
    request_to_smtp    the request's send to the SMTP server's receipt of its email, from the SMTP record (every
                       backend; the request, the enqueue, the pickup and the send): `pickup_request_to_smtp_*`
"""

from __future__ import annotations

import contextlib
import time

import numpy as np
import pandas as pd

from helpers.instruments import cpu, enqueuer, lifecycle
from helpers.protocols.consumers import has_workers, worker_pids
from helpers.protocols.messages import new_tag, recipient
from helpers.protocols.turns import turn_order
from helpers.stack import Lab
from helpers.stack.lab import LabConfig
from helpers.stack.queues import backend_class

# Huey's consumer defaults: an idle worker sleeps 0.1 s, then 15 % longer after every empty poll, up to 10 s.
DEFAULT_POLLING = {"consumer_initial_delay_s": 0.1, "consumer_max_delay_s": 10.0, "consumer_backoff": 1.15}
# Tuned: the tuning knob of the lab's default backend (Huey on SQLite), defined once on its class
# (QueueBackend.tuned_worker_config): every worker polls at least every 20 ms, whatever the idle time (the idle CPU
# cost is measured).
TUNED_POLLING = dict(backend_class(LabConfig.queue_backend).tuned_worker_config)
POLLING_SETTINGS = {"default": DEFAULT_POLLING, "tuned": TUNED_POLLING}
DEFERRED = "/email/deferred/"


def poll_interval_after_idle(idle_s: float, initial_delay_s: float, max_delay_s: float, backoff: float) -> float:
    """The sleep a Huey worker is in after `idle_s` of empty polls (its k-th sleep is initial * backoff**k,
    capped at max): a task arriving then waits up to this long before that worker looks again."""
    slept, delay = 0.0, initial_delay_s
    while slept + min(delay, max_delay_s) < idle_s:
        slept += min(delay, max_delay_s)
        delay *= backoff
    return min(delay, max_delay_s)


def polling_values(polling: dict) -> tuple[float, float, float]:
    return (polling["consumer_initial_delay_s"], polling["consumer_max_delay_s"], polling["consumer_backoff"])


def idle_order(idle_s: list[float], repeats: int, seed: int = 3) -> np.ndarray:
    """Every idle period `repeats` times, in a random order that is the same for every setting."""
    return np.random.default_rng(seed).permutation(np.repeat(np.asarray(idle_s, dtype=float), repeats))


def enqueue_to_start(lab: Lab, idle_s: list[float], repeats: int, polling: dict, label: str) -> pd.DataFrame:
    """Restart the consumer with `polling`, then enqueue one no-op task each time the consumer has been idle for one
    of `idle_s` since the previous task finished (idle_order); one row per task with pickup_ms = start - enqueue
    (the lab records task events)."""
    lab.start_consumer(**polling)
    order = idle_order(idle_s, repeats)
    gaps = np.concatenate([[0.0], order])  # the first task only ends the start-up activity
    since = time.time()
    plan = enqueuer.EnqueuePlan("noop", [float(gap) for gap in gaps])
    plan.after_finish = True
    enqueued = enqueuer.enqueue(lab.django_env(), plan)
    tasks = lifecycle.wait_for_tasks(lab.stats_file, since, task_ids=enqueued["task_id"])
    tasks = tasks.merge(enqueued[["task_id", "seq"]], on="task_id").sort_values("seq")
    tasks["idle_s"] = tasks["enqueued"] - tasks["finished"].shift(1)  # as it happened: finish events are
    tasks = tasks.iloc[1:].assign(idle_nominal_s=order)                 # seen up to a flush interval late
    tasks["pickup_ms"] = (tasks["executing"] - tasks["enqueued"]) * 1e3
    tasks["setting"] = label
    tasks["poll_interval_ms"] = [poll_interval_after_idle(t, *polling_values(polling)) * 1e3 for t in tasks["idle_s"]]
    return tasks.reset_index(drop=True)


def request_to_smtp(labs: dict[str, Lab], idle_s: list[float], repeats: int, setting: str) -> pd.DataFrame:
    """One email through /email/deferred/ to every lab after each idle period (idle_order), the labs posted in turn
    (A B, then B A); pickup_ms = the SMTP server's received_at - the request's send. A first email ends the
    start-up activity. The idle workers' CPU is read over every idle period. One row per email, with its
    setting."""
    tag = new_tag("pickup")
    order = idle_order(idle_s, repeats)
    _post_round(labs, tag, -1, 0)
    rows, idle_cpu_s, idle_wall_s = [], dict.fromkeys(labs, 0.0), 0.0
    for k, idle in enumerate(order):
        before = {b: sum(cpu.cpu_seconds(worker_pids(lab)).values()) for b, lab in labs.items()}
        time.sleep(idle)
        for b, lab in labs.items():
            idle_cpu_s[b] += sum(cpu.cpu_seconds(worker_pids(lab)).values()) - before[b]
        idle_wall_s += idle
        rows += _post_round(labs, tag, k, k)
    frame = pd.DataFrame(rows)
    frame["idle_nominal_s"] = frame["k"].map(dict(enumerate(order)))
    frame["setting"] = [f"{labs[b].queue.label}, {setting}" for b in frame["backend"]]
    frame["settings"] = setting
    frame["idle_cpu_pct"] = [100 * idle_cpu_s[b] / idle_wall_s if has_workers(labs[b]) else np.nan
                             for b in frame["backend"]]
    return frame


def _post_round(labs: dict[str, Lab], tag: str, k: int, turn: int, timeout_s: float = 30.0) -> list[dict]:
    """Post email k to every lab, then wait for each to reach its SMTP server; one row per lab."""
    sent, to = [], recipient(tag, "pickup", k)
    for backend in turn_order(labs, turn):
        lab = labs[backend]
        before = lab.mail.emails_received()
        started = time.time()
        status = lab.http.post(DEFERRED, {"to": to}).status
        sent.append((backend, before, started, status))
    rows = []
    for backend, before, started, status in sent:
        lab = labs[backend]
        with contextlib.suppress(TimeoutError):  # the time is the SMTP server's own: polling here only waits
            lab.mail.wait_for_emails(before + 1, timeout=timeout_s)
        found = lab.mail.deliveries()
        found = found[found["rcpt_tos"].map(lambda r: to in list(r if r is not None else []))]
        received = float(found["received_at"].min()) if len(found) else None
        rows.append({"backend": backend, "k": k, "status": status, "sent_at": started, "received_at": received,
                     "pickup_ms": (received - started) * 1e3 if received is not None else np.nan})
    return rows


def summary(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Per group of `by` (in the order measured): n (pickups that happened), p50, p90, p99 and max pickup (ms),
    and the first value of the frame's backend and idle_cpu_pct (% of one core) where it has them."""
    aggregations = {"n": ("pickup_ms", "count"), "p50_ms": ("pickup_ms", "median"),
                    "p90_ms": ("pickup_ms", lambda v: v.quantile(0.9)),
                    "p99_ms": ("pickup_ms", lambda v: v.quantile(0.99)), "max_ms": ("pickup_ms", "max")}
    aggregations.update({column: (column, "first") for column in ("backend", "idle_cpu_pct")
                         if column in frame and column not in by})
    return frame.groupby(by, sort=False).agg(**aggregations)
