"""Notebook 06, scale out: queue backends side by side in one run (`python -m helpers bench scale_out`): Huey on
SQLite against Huey on Redis by default, any backends of helpers.stack.queues by parameter.

The labs run at once, alike but for `queue_backend` (helpers.protocols.turns): each experiment takes turns between
them (A, B, then B, A), so all meet the same machine. The procedures read the queue through `lab.queue`, whichever
backend holds it.

    enqueue in the view         /email/deferred/ against /noop/, through gunicorn (helpers.protocols.view_cost)
    pickup                      enqueue -> start after an idle period (helpers.protocols.pickup.enqueue_to_start):
                                SQLite polled (Huey's default back-off, tuned polling), Redis in a blocking pop
    drain vs consumer processes a full queue emptied by 1, 2, 4 run_huey processes (helpers.protocols.drain)
    contention                  P producer processes enqueueing while C consumer processes take tasks: errors,
                                and the enqueue's latency tail while every producer was active
    CPU left for the web server open-loop load on the deferred view; CPU of every part (200 % = both cores)
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import pandas as pd

from helpers import runs
from helpers.analysis import latency
from helpers.instruments import enqueuer
from helpers.instruments.cpu import CpuMeter
from helpers.instruments.endpoints import load_spec
from helpers.instruments.loadgen import run_load
from helpers.protocols import drain, pickup, view_cost
from helpers.protocols.consumers import ensure_consumers
from helpers.protocols.messages import each_delivered_once
from helpers.protocols.turns import interleaved, side_by_side, turn_order
from helpers.runs.bench import benchmark
from helpers.stack import Lab

BACKENDS = ("huey_sqlite", "huey_redis")  # notebook 06's question: one machine's file against a server
# Throughput experiments measure the queue, not the instruments: no stats recorder, no per-task log lines.
QUIET = {"record_task_events": False, "huey_log_level": "WARNING"}


def roles(labs: dict[str, Lab]) -> dict[str, str]:
    """Which backend plays which part in the comparisons, read off the backends' attributes (never their names):
    "embedded" (no server of its own), "server" (a queue server), "polled" (idle workers poll), "blocking" (idle
    workers wait in a blocking pop). Notebook 06's claims compare these."""
    found = {}
    for backend, lab in labs.items():
        found.setdefault("server" if lab.queue.servers else "embedded", backend)
        found.setdefault("blocking" if lab.queue.blocking_pickup else "polled", backend)
    return found


# -- 1. enqueue latency in the view ----------------------------------------------------------------------------

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

POLLING = {"default polling": pickup.DEFAULT_POLLING, "tuned polling": pickup.TUNED_POLLING}


def pickup_settings(labs: dict[str, Lab]) -> list[tuple[str, str, dict]]:
    """(label, backend, consumer settings) to measure: a polling backend with Huey's default back-off and with
    tuned polling; a blocking-pop backend once (it never sleeps between polls)."""
    settings = []
    for backend, lab in labs.items():
        if lab.queue.blocking_pickup:
            settings.append((f"{lab.queue.label}, blocking pop", backend, pickup.DEFAULT_POLLING))
        else:
            settings.extend((f"{lab.queue.label}, {name}", backend, polling) for name, polling in POLLING.items())
    return settings


def pickups(labs: dict[str, Lab], idle_s: list[float], repeats: int, processes: int = 1) -> pd.DataFrame:
    """One no-op task after each idle period, per setting (helpers.protocols.pickup.enqueue_to_start, the stats
    recorder on): pickup_ms = start - enqueue. The consumers are left with each lab's own polling."""
    frames = []
    for label, backend, polling in pickup_settings(labs):
        lab = labs[backend]
        # taken up by the consumers' restart in pickup_after_idle (the enqueuer records too)
        lab.config = replace(lab.config, record_task_events=True, consumer_processes=processes)
        frame = pickup.enqueue_to_start(lab, idle_s, repeats, polling, label).assign(backend=backend)
        if lab.queue.blocking_pickup:
            frame["poll_interval_ms"] = np.nan  # no polling: the pop returns as soon as a task is pushed
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def pickup_summary(pickups_frame: pd.DataFrame) -> pd.DataFrame:
    """Per setting (in the order measured): its backend, n, p50, p90, p99 and max pickup delay (enqueue to start)."""
    return pickup.summary(pickups_frame, ["setting"])


# -- 3. drain rate against consumer processes -----------------------------------------------------------------

def drain_sweep(labs: dict[str, Lab], count: int, processes=(1, 2, 4), workers: int = 4,
                worker_type: str = "thread", turns: int = 1) -> pd.DataFrame:
    """Fill each queue with `count` no-op tasks (timing every direct enqueue), then let `processes` consumer
    processes of `workers` workers each empty it (helpers.protocols.drain.enqueue_and_drain); every point
    `turns` times (turns outermost, so repeats are spread over the run). One row per drain."""
    rows = []
    for turn in range(turns):
        for n in sorted(processes, reverse=True):  # ends on one process each, where the next experiment starts
            rows.extend(_drain_point(labs, count, n, workers, worker_type, turn))
    return pd.DataFrame(rows)


def speedup_text(value: float | None) -> str:
    """A drain speed-up for the notebook's prose: "1.73 ×", or why there is none."""
    return "(not measured: the queue was empty before every process was up)" if value is None else f"{value:.2f} ×"


def drain_medians(drains: pd.DataFrame) -> pd.DataFrame:
    """Median over turns per backend and number of processes, with the number of turns."""
    groups = drains.groupby(["backend", "processes"], sort=False)
    return groups.median(numeric_only=True).drop(columns="turn", errors="ignore").assign(turns=groups.size())


def _drain_point(labs: dict[str, Lab], count: int, n: int, workers: int, worker_type: str, turn: int) -> list[dict]:
    rows = []
    for backend in turn_order(labs, turn):
        lab = labs[backend]
        commands = lab.queue.server_commands()
        measured = drain.enqueue_and_drain(lab, count, workers, worker_type, consumer_processes=n, **QUIET)
        rows.append({"backend": backend, "processes": n, "turn": turn, "workers_per_process": workers,
                     "tasks": len(measured.enqueue_us), "tasks_per_s": measured.drain_tasks_per_s,
                     "enqueue_p50_us": measured.enqueue_us.median(),
                     "enqueue_p99_us": measured.enqueue_us.quantile(0.99),
                     "queued_when_all_up": measured.queued_when_all_up,
                     # every command the queue's server ran from the first enqueue to the empty queue, per task
                     # (idle pops and the depth sampler's LLENs included: an upper bound)
                     "server_commands_per_task": None if commands is None else
                     (lab.queue.server_commands() - commands) / measured.enqueued_total})
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
        for _, backend, lab in interleaved(labs):
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
    the consumers, the queue's servers, the SMTP server and the load generator, and what the queue's side leaves
    the web."""
    rows = []
    for turn, backend, lab in interleaved(labs, turns):
        ensure_consumers(lab, consumer_processes=consumers, **QUIET)
        lab.wait_until_drained()
        with CpuMeter(lab) as meter:
            result = run_load(load_spec(lab, "deferred", mode="open", rate=rate, arrival="poisson",
                                        connections=64, duration_s=seconds, warmup_s=warmup_s, seed=turn + 1))
        lab.wait_until_drained(timeout=120)
        parts = cpu_by_part(meter.usage())
        generator = 100 * result.generator_cpu_s / meter.wall_s
        servers = sum(parts.get(server, 0.0) for server in lab.queue.servers)
        queue_side = parts.get("consumers", 0.0) + servers
        s = result.summary
        rows.append({"backend": backend, "turn": turn, "rate": rate, "throughput": s["throughput"],
                     "latency_p50_ms": s["latency_p50_ms"], "latency_p99_ms": s["latency_p99_ms"],
                     "errors": s["errors"] + s["non_2xx"], "cpu_web_pct": parts.get("web", 0.0),
                     "cpu_consumers_pct": parts.get("consumers", 0.0), "cpu_servers_pct": servers,
                     "cpu_smtp_pct": parts.get("smtp", 0.0), "cpu_generator_pct": generator,
                     "cpu_left_for_web_pct": 200.0 - queue_side - parts.get("smtp", 0.0) - generator})
    return pd.DataFrame(rows)


# -- 6. on paper: consumers on other machines, from the figures measured here ---------------------------------

def multi_host_projection(drains: pd.DataFrame, pickup_table: pd.DataFrame, cpu: pd.DataFrame, backend: str,
                          rtts_ms=(0.05, 0.25, 0.5, 1.0)) -> pd.DataFrame:
    """What a network between the hosts and the queue's server would change, as arithmetic on this run's figures
    of `backend` (a backend with a server; not a measurement): an enqueue and a pickup each gain about one round
    trip; a worker that waits for each of its commands in turn finishes at most 1 / (commands per task x RTT)
    tasks/s; one server core serves at most 1 / (its CPU seconds per task) tasks/s, whatever the number of
    consumer hosts."""
    own = drains[drains["backend"] == backend]
    fewest = own["processes"] == own["processes"].min()
    enqueue_us = float(own.loc[fewest, "enqueue_p50_us"].median())
    commands = float(own["server_commands_per_task"].median())
    commands_in_drain = max(commands - 1.0, 1.0)  # the push is the producer's; the rest the consumer's
    pickup_ms = float(pickup_table.loc[pickup_table["backend"] == backend, "p50_ms"].min())
    server_cpu = cpu[cpu["backend"] == backend]
    cpu_s_per_task = float((server_cpu["cpu_servers_pct"] / 100 / server_cpu["throughput"]).median())
    rows = []
    for rtt in rtts_ms:
        rows.append({"rtt_ms": rtt, "enqueue_p50_ms": enqueue_us / 1e3 + rtt, "pickup_p50_ms": pickup_ms + rtt,
                     "tasks_per_s_per_worker_max": 1e3 / (commands_in_drain * rtt),
                     "server_core_tasks_per_s_max": 1 / cpu_s_per_task if cpu_s_per_task > 0 else np.nan})
    return pd.DataFrame(rows).set_index("rtt_ms")


# -- the key figures, flat (notebook 06's run.json, which notebook 00 compares, and `bench scale_out`) ----------

def key_figures(view: pd.DataFrame, pickup_table: pd.DataFrame, drains: pd.DataFrame, contention_rows: pd.DataFrame,
                cpu: pd.DataFrame, deliveries: pd.DataFrame | None = None) -> dict[str, float | int | None]:
    """One number per figure, named <backend>_<what>_<unit>: from view_summary, pickup_summary, drain_sweep,
    contention, cpu_share and view_cost.measure's deliveries (the figures notebook 06 records and `bench scale_out`
    prints)."""

    r = runs.rounded
    figures: dict[str, float | int | None] = {}
    drain = drain_medians(drains)
    fewest = int(drains["processes"].min())
    busiest = contention_rows.loc[contention_rows["producers"] == contention_rows["producers"].max()]
    for backend in drains["backend"].unique():
        figures[f"{backend}_enqueue_p50_us"] = r(drain.loc[(backend, fewest), "enqueue_p50_us"])
        figures[f"{backend}_enqueue_p99_us"] = r(drain.loc[(backend, fewest), "enqueue_p99_us"])
        deferred, noop = view.loc[(backend, "deferred"), "p50_ms"], view.loc[(backend, "noop"), "p50_ms"]
        figures[f"{backend}_view_deferred_p50_ms"] = r(deferred, 3)
        figures[f"{backend}_view_noop_p50_ms"] = r(noop, 3)
        figures[f"{backend}_drain_tasks_per_s"] = r(drain.loc[(backend, fewest), "tasks_per_s"], 0)
        one = drain.loc[(backend, fewest), "tasks_per_s"]
        for n in sorted(drains["processes"].unique()):
            if n != fewest:
                rate = drain.loc[(backend, n), "tasks_per_s"]
                figures[f"{backend}_drain_{n}_consumers_tasks_per_s"] = r(rate, 0)
                figures[f"{backend}_drain_{n}_consumers_speedup"] = r(rate / one, 2)
                # the fewest tasks left once all n processes were up, over the turns (0: the rate was not measurable)
                figures[f"{backend}_drain_{n}_consumers_queued_when_up"] = int(
                    drains.loc[(drains["backend"] == backend) & (drains["processes"] == n), "queued_when_all_up"].min())
        contended = busiest[busiest["backend"] == backend].iloc[0]
        figures[f"{backend}_contended_enqueue_p99_us"] = r(contended["p99_us"])
        figures[f"{backend}_contended_enqueue_max_us"] = r(contended["max_us"])
        figures[f"{backend}_enqueue_errors"] = int(contention_rows.loc[contention_rows["backend"] == backend,
                                                                       "errors"].sum())
        own_cpu = cpu.loc[cpu["backend"] == backend]
        figures[f"{backend}_cpu_left_for_web_pct"] = r(own_cpu["cpu_left_for_web_pct"].median())
        figures[f"{backend}_load_errors"] = int(own_cpu["errors"].sum())
        figures[f"{backend}_server_cpu_pct"] = r(own_cpu["cpu_servers_pct"].median())
        figures[f"{backend}_server_commands_per_task"] = r(
            drains.loc[drains["backend"] == backend, "server_commands_per_task"].median())
        own_pickups = pickup_table[pickup_table["backend"] == backend]
        # the first setting is the backend's default (polling.default or its blocking pop)
        figures[f"{backend}_pickup_enqueue_to_start_p50_ms"] = r(own_pickups["p50_ms"].iloc[0], 2)
        figures[f"{backend}_pickup_enqueue_to_start_max_ms"] = r(own_pickups["max_ms"].iloc[0], 2)
        if len(own_pickups) > 1:
            figures[f"{backend}_tuned_pickup_enqueue_to_start_p50_ms"] = r(own_pickups["p50_ms"].iloc[1], 2)
        figures[f"{backend}_consumers_cpu_pct"] = r(own_cpu["cpu_consumers_pct"].median())
        if deliveries is not None:
            figures[f"{backend}_view_deferred_sent"] = int(deliveries.loc[backend, "requested"])
            figures[f"{backend}_view_accepted"] = int(deliveries.loc[backend, "accepted"])
            figures[f"{backend}_view_emails_arrived"] = int(deliveries.loc[backend, "emails_arrived"])
            figures[f"{backend}_view_lost"] = int(deliveries.loc[backend, "lost"])
            figures[f"{backend}_view_duplicated"] = int(deliveries.loc[backend, "duplicated"])
    figures["pickups_per_setting"] = int(pickup_table["n"].min())
    figures["contention_producers"] = int(busiest["producers"].iloc[0])
    figures["contention_consumers"] = int(busiest["consumers"].iloc[0])
    return figures


@benchmark("scale_out", aliases=("backends",))
def backends(run_dir, enqueues: int = 5000, view_requests: int = 400, idle_s: float = 2.0, pickups_per_setting: int = 7,
             producers: int = 4, rate_per_producer: float = 500.0, load_rate: float = 300.0) -> dict:
    """Huey on SQLite against Huey on Redis, side by side in one run: direct enqueue, the deferred view, pickup
    after `idle_s` idle (SQLite polled with Huey's defaults and tuned; Redis in a blocking pop), drain by 1, 2 and
    4 consumer processes (4 thread workers each), `producers` enqueuers against as many consumer processes, and
    the CPU the queue leaves the web server under load."""
    with side_by_side(run_dir, BACKENDS, web_workers=2, smtp_delay_s=0.0, consumer_workers=4,
                      huey_log_level="WARNING", **pickup.TUNED_POLLING) as labs:
        drains = drain_sweep(labs, enqueues, (1, 2, 4), workers=4, turns=3)
        view = view_cost.measure(labs, "noop", view_requests, turns=2)
        pickup_table = pickup_summary(pickups(labs, [idle_s], pickups_per_setting))
        contended, _ = contention(labs, [(1, 1), (producers, producers)], rate_per_producer, 3.0)
        cpu = cpu_share(labs, load_rate, 5.0, consumers=2, turns=2)
    for name, frame in (("drains", drains), ("contention", contended), ("cpu", cpu)):
        runs.save_table(run_dir, name, frame)
    return key_figures(view_summary(view.timings), pickup_table, drains, contended, cpu, view.deliveries)


CLAIMS = {
    "delivered": "every deferred email arrived, on both backends",
    "enqueue_cost": "a direct enqueue costs less on SQLite than on Redis (p50)",
    "pickup": "Redis blocking pop picks up sooner than SQLite default polling",
    "drain_one": "one consumer process drains SQLite faster than Redis",
    "drain_four": "4 consumer processes drain Redis faster than 1 (quick mode: timed with all 4 up)",
    "contention_errors": "no enqueue failed under contention, on either backend",
    "load_errors": "the load met no error on either backend",
    "server_cpu": "Redis's server used less CPU than the consumers under load",
}


def verdict(figures: dict, quick: bool = False) -> dict[str, bool | None]:
    """Notebook 06's claims, from key_figures() and which backend played which part (roles, from roles()). The
    speedup of 4 processes is None when the queue was empty before all 4 were up."""
    f, role = figures, figures["roles"]
    emb, srv, pol, blk = (role[k] for k in ("embedded", "server", "polled", "blocking"))
    labs, scale = sorted(set(role.values())), f[f"{srv}_drain_4_consumers_speedup"]
    return runs.claims(CLAIMS, {
        "delivered": all(f[f"{b}_view_accepted"] == f[f"{b}_view_deferred_sent"] > 0
                         and each_delivered_once(f, f"{b}_view_lost", f"{b}_view_duplicated",
                                                 f"{b}_view_emails_arrived", f"{b}_view_accepted") for b in labs),
        "enqueue_cost": f[f"{emb}_enqueue_p50_us"] < f[f"{srv}_enqueue_p50_us"],
        "pickup": f[f"{blk}_pickup_enqueue_to_start_p50_ms"] < f[f"{pol}_pickup_enqueue_to_start_p50_ms"],
        "drain_one": f[f"{emb}_drain_tasks_per_s"] > f[f"{srv}_drain_tasks_per_s"],
        "drain_four": scale is not None and (quick or scale > 1),
        "contention_errors": all(f[f"{b}_enqueue_errors"] == 0 for b in labs),
        "load_errors": all(f[f"{b}_load_errors"] == 0 for b in labs),
        "server_cpu": f[f"{srv}_server_cpu_pct"] < f[f"{srv}_consumers_cpu_pct"],
    }, quick)
