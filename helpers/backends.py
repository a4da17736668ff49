"""SQLite against Redis as Huey's queue, side by side in one run (notebook 06 and `python -m helpers bench backends`).

Two labs run at once, alike but for `queue_backend`: each experiment takes turns between them (SQLite, Redis,
SQLite, ...), so both meet the same machine. The experiments of notebook 03 (helpers.queue_experiments) are
reused as they are: they read the queue through `lab.queue_location`, whichever backend holds it.

    enqueue in the view         /email/deferred/ against /noop/, through gunicorn
    pickup                      enqueue -> start after an idle period: SQLite polled (Huey's default back-off,
                                tuned polling), Redis in a blocking pop (BRPOP)
    drain vs consumer processes a full queue emptied by 1, 2, 4 run_huey processes
    contention                  P producer processes enqueueing while C consumer processes take tasks: errors,
                                and the enqueue's latency tail while every producer was active
    CPU left for the web server open-loop load on the deferred view; CPU of every part (200 % = both cores)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from helpers import enqueuer, experiments, latency, redis_server
from helpers import queue_experiments as qe
from helpers.client import RequestSpec, time_requests
from helpers.cpu import CpuMeter
from helpers.loadgen import run_load
from helpers.stack import Lab

BACKENDS = ("sqlite", "redis")
# Throughput experiments measure the queue, not the instruments: no stats recorder, no per-task log lines.
QUIET = {"record_task_events": False, "huey_log_level": "WARNING"}


@contextlib.contextmanager
def side_by_side(run_dir: Path, **config) -> Iterator[dict[str, Lab]]:
    """Both labs, running at once with the same settings (each in its own sub-folder); stopped together."""
    labs = {}
    try:
        for backend in BACKENDS:
            labs[backend] = Lab(run_dir=Path(run_dir) / backend, queue_backend=backend, **config).start()
        yield labs
    finally:
        for lab in reversed(labs.values()):
            lab.stop()


def ensure_consumers(lab: Lab, **changes) -> None:
    """Restart the lab's consumers with `changes` to its config, unless they already run with exactly those."""
    running = lab.consumer_names() and all(lab.processes[name].alive() for name in lab.consumer_names())
    if not running or any(getattr(lab.config, key) != value for key, value in changes.items()):
        lab.start_consumer(**changes)


def turn_order(turn: int) -> tuple[str, ...]:
    """The backends in the order of this turn: A B, then B A, ... so neither always goes first."""
    return BACKENDS if turn % 2 == 0 else BACKENDS[::-1]


def _interleaved(labs: dict[str, Lab], turns: int = 1):
    """(turn, backend, lab) for every turn, in turn_order."""
    for turn in range(turns):
        for backend in turn_order(turn):
            yield turn, backend, labs[backend]


# -- 1. enqueue latency in the view ----------------------------------------------------------------------------

def view_enqueue(labs: dict[str, Lab], requests: int, turns: int = 2, warmup: int = 5) -> pd.DataFrame:
    """The deferred email view (validate, enqueue, answer 202) and the no-op view, `requests` each per backend,
    in `turns` rounds; every requested email must still arrive. One row per request, with its backend."""
    per_turn = max(1, requests // turns)
    specs = [RequestSpec("noop", "/noop/", per_turn, warmup=warmup),
             RequestSpec("deferred", "/email/deferred/", per_turn, "POST", {"to": "scale{i}@example.test"},
                         warmup=warmup)]
    frames, expected = [], {}
    for turn, backend, lab in _interleaved(labs, turns):
        expected.setdefault(backend, lab.emails_received())
        timings = time_requests("127.0.0.1", lab.web_port, specs, include_warmup=True)
        expected[backend] += int(((timings["label"] == "deferred") & (timings["status"] == 202)).sum())
        frames.append(timings.assign(backend=backend, turn=turn))
    for backend, lab in labs.items():
        lab.wait_for_emails(expected[backend], timeout=120)
    return pd.concat(frames, ignore_index=True)


def view_summary(timings: pd.DataFrame) -> pd.DataFrame:
    """Per backend and endpoint: n, p50, p99, max (warm-ups left out); the enqueue's share = deferred - noop."""
    measured = timings[~timings["warmup"] & timings["error"].isna()]
    rows = []
    for backend, group in measured.groupby("backend", sort=False):
        summary = latency.summarize(group)
        for label in summary.index:
            rows.append({"backend": backend, "endpoint": label, **summary.loc[label, ["n", "p50_ms", "p99_ms",
                                                                                      "max_ms"]].to_dict()})
    frame = pd.DataFrame(rows).set_index(["backend", "endpoint"])
    return frame


# -- 2. pickup: polling against a blocking pop ----------------------------------------------------------------

PICKUP_SETTINGS = {  # label: (backend, consumer settings)
    "SQLite, Huey's default polling": ("sqlite", qe.DEFAULT_POLLING),
    "SQLite, tuned polling": ("sqlite", qe.TUNED_POLLING),
    "Redis, blocking pop": ("redis", qe.DEFAULT_POLLING),  # a blocking storage never sleeps between polls
}


def pickups(labs: dict[str, Lab], idle_s: list[float], repeats: int, processes: int = 1) -> pd.DataFrame:
    """One no-op task after each idle period, per setting (helpers.queue_experiments.pickup_after_idle, the
    stats recorder on): pickup_ms = start - enqueue. The consumers are left with each lab's own polling."""
    frames = []
    for label, (backend, polling) in PICKUP_SETTINGS.items():
        lab = labs[backend]
        # taken up by the consumers' restart in pickup_after_idle (the enqueuer records too)
        lab.config = replace(lab.config, record_task_events=True, consumer_processes=processes)
        frame = qe.pickup_after_idle(lab, idle_s, repeats, polling, label).assign(backend=backend)
        if backend == "redis":
            frame["poll_interval_ms"] = np.nan  # no polling: the pop returns as soon as a task is pushed
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def pickup_summary(pickups_frame: pd.DataFrame) -> pd.DataFrame:
    groups = pickups_frame.groupby("setting", sort=False)["pickup_ms"]
    return pd.DataFrame({"n": groups.size(), "p50_ms": groups.median(), "p90_ms": groups.quantile(0.9),
                         "max_ms": groups.max()})


# -- 3. drain rate against consumer processes -----------------------------------------------------------------

def drain_sweep(labs: dict[str, Lab], count: int, processes=(1, 2, 4), workers: int = 4,
                worker_type: str = "thread", turns: int = 1) -> pd.DataFrame:
    """Fill each queue with `count` no-op tasks (timing every direct enqueue), then let `processes` consumer
    processes of `workers` workers each empty it (helpers.queue_experiments.enqueue_and_drain); every point
    `turns` times (turns outermost, so repeats are spread over the run). One row per drain."""
    rows = []
    for turn in range(turns):
        for n in sorted(processes, reverse=True):  # ends on one process each, where the next experiment starts
            rows.extend(_drain_point(labs, count, n, workers, worker_type, turn))
    return pd.DataFrame(rows)


def drain_medians(drains: pd.DataFrame) -> pd.DataFrame:
    """Median over turns per backend and number of processes, with the number of turns."""
    groups = drains.groupby(["backend", "processes"], sort=False)
    return groups.median(numeric_only=True).drop(columns="turn", errors="ignore").assign(turns=groups.size())


def _drain_point(labs: dict[str, Lab], count: int, n: int, workers: int, worker_type: str, turn: int) -> list[dict]:
    rows = []
    for backend in turn_order(turn):
        lab = labs[backend]
        commands = redis_server.commands_processed(lab.redis_url) if backend == "redis" else None
        measured = qe.enqueue_and_drain(lab, count, workers, worker_type, consumer_processes=n, **QUIET)
        rows.append({"backend": backend, "processes": n, "turn": turn, "workers_per_process": workers,
                     "tasks": count, "tasks_per_s": measured.drain_tasks_per_s,
                     "enqueue_p50_us": measured.enqueue_us.median(),
                     "enqueue_p99_us": measured.enqueue_us.quantile(0.99),
                     "left_in_queue": lab.queue_depth(),
                     # every command the server ran from the first enqueue to the empty queue, per task
                     # (idle pops and the depth sampler's LLENs included: an upper bound)
                     "redis_commands_per_task": None if commands is None else
                     (redis_server.commands_processed(lab.redis_url) - commands) / count})
    return rows


# -- 4. lock contention: producers x consumers ----------------------------------------------------------------

def produce(lab: Lab, producers: int, rate_per_producer: float, seconds: float) -> pd.DataFrame:
    """`producers` enqueuer processes at once, each open-loop at `rate_per_producer` no-op tasks/s; a failed
    enqueue is recorded with its error. One row per enqueue, with its producer."""
    count = max(1, int(round(rate_per_producer * seconds)))
    plan = enqueuer.EnqueuePlan("noop", list(np.arange(count) / rate_per_producer), keep_going=True)
    env = lab.django_env()
    with ThreadPoolExecutor(producers) as pool:
        frames = list(pool.map(lambda _: enqueuer.enqueue(env, plan), range(producers)))
    return pd.concat([f.assign(producer=k) for k, f in enumerate(frames)], ignore_index=True)


def all_active(enqueues: pd.DataFrame) -> pd.Series:
    """The enqueues made while every producer was sending (each started after its own Django set-up)."""
    spans = enqueues.groupby("producer")["enqueued_at"].agg(["min", "max"])
    return enqueues["enqueued_at"].between(spans["min"].max(), spans["max"].min())


def contention(labs: dict[str, Lab], levels, rate_per_producer: float, seconds: float, workers: int = 4,
               worker_type: str = "thread") -> tuple[pd.DataFrame, pd.DataFrame]:
    """For each (producers, consumer processes) level and backend: errors and the enqueue latency tail while
    every producer was active. Returns (summary rows, every enqueue)."""
    rows, frames = [], []
    for producers, consumers in levels:
        for _, backend, lab in _interleaved(labs):
            ensure_consumers(lab, consumer_processes=consumers, consumer_workers=workers,
                             consumer_worker_type=worker_type, **QUIET)
            enqueues = produce(lab, producers, rate_per_producer, seconds)
            lab.wait_until_drained(timeout=120)
            enqueues = enqueues.assign(backend=backend, producers=producers, consumers=consumers,
                                       overlap=all_active(enqueues))
            frames.append(enqueues)
            inside = enqueues[enqueues["overlap"]]
            ok = inside[inside["error"].isna()]["enqueue_us"]
            rows.append({"backend": backend, "producers": producers, "consumers": consumers,
                         "enqueues": len(enqueues), "errors": int(enqueues["error"].notna().sum()),
                         "n_overlap": len(ok), "p50_us": ok.median(), "p99_us": ok.quantile(0.99),
                         "max_us": ok.max(), "lag_p99_ms": inside["lag_ms"].quantile(0.99)})
    return pd.DataFrame(rows), pd.concat(frames, ignore_index=True)


# -- 5. CPU left for the web server ---------------------------------------------------------------------------

def cpu_by_part(usage: dict[str, float]) -> dict[str, float]:
    """CpuMeter's per-process figures grouped by part: every consumer process counts as "consumers"."""
    parts: dict[str, float] = {}
    for key, value in usage.items():
        name = key.removeprefix("cpu_").removesuffix("_pct")
        part = "consumers" if name.startswith("consumer") else name
        parts[part] = parts.get(part, 0.0) + value
    return parts


def cpu_share(labs: dict[str, Lab], rate: float, seconds: float, consumers: int = 1, warmup_s: float = 1.0,
              turns: int = 1) -> pd.DataFrame:
    """Open-loop arrivals at the deferred email view; CPU (% of one core, 200 % = the machine) of the web server,
    the consumers, Redis, the SMTP server and the load generator, and what the queue's side leaves the web."""
    rows = []
    for turn, backend, lab in _interleaved(labs, turns):
        ensure_consumers(lab, consumer_processes=consumers, **QUIET)
        lab.wait_until_drained()
        with CpuMeter(lab) as meter:
            result = run_load(experiments.load_spec(lab, "deferred", mode="open", rate=rate, arrival="poisson",
                                                    connections=64, duration_s=seconds, warmup_s=warmup_s,
                                                    seed=turn + 1))
        lab.wait_until_drained(timeout=120)
        parts = cpu_by_part(meter.usage())
        generator = 100 * result.generator_cpu_s / meter.wall_s
        queue_side = parts.get("consumers", 0.0) + parts.get("redis", 0.0)
        s = result.summary
        rows.append({"backend": backend, "turn": turn, "rate": rate, "throughput": s["throughput"],
                     "latency_p50_ms": s["latency_p50_ms"], "latency_p99_ms": s["latency_p99_ms"],
                     "errors": s["errors"] + s["non_2xx"], "cpu_web_pct": parts.get("web", 0.0),
                     "cpu_consumers_pct": parts.get("consumers", 0.0), "cpu_redis_pct": parts.get("redis", 0.0),
                     "cpu_smtp_pct": parts.get("smtp", 0.0), "cpu_generator_pct": generator,
                     "cpu_left_for_web_pct": 200.0 - queue_side - parts.get("smtp", 0.0) - generator})
    return pd.DataFrame(rows)


# -- 6. on paper: consumers on other machines, from the figures measured here ---------------------------------

def multi_host_projection(drains: pd.DataFrame, pickup: pd.DataFrame, cpu: pd.DataFrame,
                          rtts_ms=(0.05, 0.25, 0.5, 1.0)) -> pd.DataFrame:
    """What a network between the hosts and Redis would change, as arithmetic on this run's Redis figures (not a
    measurement): an enqueue and a pickup each gain about one round trip; a worker that waits for each of its
    commands in turn finishes at most 1 / (commands per task x RTT) tasks/s; one Redis core serves at most
    1 / (its CPU seconds per task) tasks/s, whatever the number of consumer hosts."""
    redis_drains = drains[drains["backend"] == "redis"]
    fewest = redis_drains["processes"] == redis_drains["processes"].min()
    enqueue_us = float(redis_drains.loc[fewest, "enqueue_p50_us"].median())
    commands = float(redis_drains["redis_commands_per_task"].median())
    commands_in_drain = max(commands - 1.0, 1.0)  # the LPUSH is the producer's; the rest the consumer's
    pickup_ms = float(pickup.loc["Redis, blocking pop", "p50_ms"])
    redis_cpu = cpu[cpu["backend"] == "redis"]
    cpu_s_per_task = float((redis_cpu["cpu_redis_pct"] / 100 / redis_cpu["throughput"]).median())
    rows = []
    for rtt in rtts_ms:
        rows.append({"rtt_ms": rtt, "enqueue_p50_ms": enqueue_us / 1e3 + rtt, "pickup_p50_ms": pickup_ms + rtt,
                     "tasks_per_s_per_worker_max": 1e3 / (commands_in_drain * rtt),
                     "redis_core_tasks_per_s_max": 1 / cpu_s_per_task if cpu_s_per_task > 0 else np.nan})
    return pd.DataFrame(rows).set_index("rtt_ms")


# -- the key figures, flat (notebook 06's run.json, which notebook 00 compares, and `bench backends`) -----------

def key_figures(view: pd.DataFrame, pickup: pd.DataFrame, drains: pd.DataFrame, contention_rows: pd.DataFrame,
                cpu: pd.DataFrame) -> dict[str, float | int | None]:
    """One number per figure, named <backend>_<what>_<unit>: from view_summary, pickup_summary, drain_sweep,
    contention and cpu_share."""

    def r(value, digits=1):
        return None if value is None or pd.isna(value) else round(float(value), digits)

    figures: dict[str, float | int | None] = {}
    drain = drain_medians(drains)
    fewest = int(drains["processes"].min())
    busiest = contention_rows.loc[contention_rows["producers"] == contention_rows["producers"].max()]
    for backend in BACKENDS:
        figures[f"{backend}_enqueue_p50_us"] = r(drain.loc[(backend, fewest), "enqueue_p50_us"])
        figures[f"{backend}_enqueue_p99_us"] = r(drain.loc[(backend, fewest), "enqueue_p99_us"])
        figures[f"{backend}_view_deferred_p50_ms"] = r(view.loc[(backend, "deferred"), "p50_ms"], 3)
        figures[f"{backend}_view_noop_p50_ms"] = r(view.loc[(backend, "noop"), "p50_ms"], 3)
        figures[f"{backend}_drain_tasks_per_s"] = r(drain.loc[(backend, fewest), "tasks_per_s"], 0)
        for n in sorted(drains["processes"].unique()):
            if n != fewest:
                figures[f"{backend}_drain_{n}_consumers_tasks_per_s"] = r(drain.loc[(backend, n), "tasks_per_s"], 0)
        contended = busiest[busiest["backend"] == backend].iloc[0]
        figures[f"{backend}_contended_enqueue_p99_us"] = r(contended["p99_us"])
        figures[f"{backend}_contended_enqueue_max_us"] = r(contended["max_us"])
        figures[f"{backend}_enqueue_errors"] = int(contention_rows.loc[contention_rows["backend"] == backend,
                                                                       "errors"].sum())
        figures[f"{backend}_cpu_left_for_web_pct"] = r(cpu.loc[cpu["backend"] == backend,
                                                               "cpu_left_for_web_pct"].median())
    figures["sqlite_pickup_p50_ms"] = r(pickup.loc["SQLite, Huey's default polling", "p50_ms"], 2)
    figures["sqlite_tuned_pickup_p50_ms"] = r(pickup.loc["SQLite, tuned polling", "p50_ms"], 2)
    figures["redis_pickup_p50_ms"] = r(pickup.loc["Redis, blocking pop", "p50_ms"], 2)
    figures["redis_pickup_max_ms"] = r(pickup.loc["Redis, blocking pop", "max_ms"], 2)
    figures["redis_server_cpu_pct"] = r(cpu.loc[cpu["backend"] == "redis", "cpu_redis_pct"].median())
    figures["redis_commands_per_task"] = r(drains["redis_commands_per_task"].median())
    figures["pickups_per_setting"] = int(pickup["n"].min())
    figures["contention_producers"] = int(busiest["producers"].iloc[0])
    figures["contention_consumers"] = int(busiest["consumers"].iloc[0])
    return figures
