"""Benchmarks: `python -m helpers bench NAME` runs one on the real stack and prints one JSON object as its
last line. Targets are judged on these figures, never inside a timed unit test."""

from __future__ import annotations

import json
import time

import pandas as pd

from helpers import experiments, runs
from helpers.loadgen import run_load
from helpers.stack import Lab

BENCHMARKS = {}


def benchmark(function):
    BENCHMARKS[function.__name__] = function
    return function


@benchmark
def overhead(fast_requests: int = 1000, blocking_requests: int = 60) -> dict:
    """The cost of one enqueue over a no-op request, and what deferring buys against sending inline."""
    run_dir = runs.new_run_dir("bench-overhead")
    with Lab(run_dir=run_dir) as lab:
        result = experiments.measure_overhead(lab, fast_requests, blocking_requests)
        config = lab.config
    noop, deferred, blocking = (result.p50(k) for k in ("noop", "deferred", "blocking"))
    figures = {
        "noop_p50_ms": round(noop, 3),
        "deferred_p50_ms": round(deferred, 3),
        "blocking_p50_ms": round(blocking, 3),
        "ratio_deferred_noop_p50": round(deferred / noop, 3),
        "speedup_blocking_deferred_p50": round(blocking / deferred, 1),
        "emails_requested": result.emails_requested,
        "emails_received": result.emails_received,
        "samples": {k: int(result.summary.loc[k, "n"]) for k in result.summary.index},
        "smtp_delay_s": config.smtp_delay_s,
        "web_workers": config.web_workers,
        "huey_synchronous": config.huey_synchronous,
        "delivery_wait_s": round(result.delivery_wait_s, 2),
        "run_dir": str(run_dir),
    }
    result.timings.to_csv(run_dir / "requests.csv", index=False)
    runs.write_metadata(run_dir, {"benchmark": "overhead", "figures": figures})
    return figures


@benchmark
def harness(connections: int = 16, duration_s: float = 8.0, trials: int = 3, open_rate: float = 1000.0) -> dict:
    """The lab's load generator against wrk on the same endpoint and connection count, then open loop.

    gunicorn runs gthread workers here so both tools keep their connections alive: with sync workers every
    request costs a new TCP connection, and the client's CPU for that (taken from the same 2 cores as the
    server) dominates the comparison. The sync-worker figures are printed beside, for the record."""
    run_dir = runs.new_run_dir("bench-harness")
    figures = {}
    with Lab(run_dir=run_dir, web_workers=4, web_worker_class="gthread", web_threads=4) as lab:
        turns = experiments.compare_with_wrk(lab, "noop", connections, duration_s, trials)
        medians = turns.groupby("tool")[["rps", "p50_ms", "p99_ms"]].median()
        open_loop = run_load(experiments.load_spec(lab, "noop", mode="open", rate=open_rate, arrival="poisson",
                                                   connections=256, duration_s=10.0, warmup_s=2.0)).summary
    with Lab(run_dir=run_dir / "sync", web_workers=4) as lab:
        sync_turns = experiments.compare_with_wrk(lab, "noop", connections, duration_s, 1)
        sync = sync_turns.set_index("tool")
    figures.update({
        "server": "gunicorn gthread 4 workers x 4 threads, keep-alive",
        "connections": connections,
        "lab_rps": round(medians.loc["lab", "rps"], 1),
        "wrk_rps": round(medians.loc["wrk", "rps"], 1),
        "rps_ratio": round(medians.loc["lab", "rps"] / medians.loc["wrk", "rps"], 3),
        "lab_p50_ms": round(medians.loc["lab", "p50_ms"], 3),
        "wrk_p50_ms": round(medians.loc["wrk", "p50_ms"], 3),
        "p50_ratio": round(medians.loc["lab", "p50_ms"] / medians.loc["wrk", "p50_ms"], 3),
        "open_loop_rate": open_rate,
        "achieved_rate": round(open_loop["achieved_rate"], 1),
        "achieved_ratio": round(open_loop["achieved_rate"] / open_rate, 4),
        "sched_lag_p99_ms": open_loop["lag_p99_ms"],
        "open_loop_latency_p50_ms": open_loop["latency_p50_ms"],
        "open_loop_latency_p99_ms": open_loop["latency_p99_ms"],
        "open_loop_late": open_loop["late"],
        "errors": int(turns["errors"].sum() + open_loop["errors"]),
        "sync_workers_lab_rps": round(sync.loc["lab", "rps"], 1),
        "sync_workers_wrk_rps": round(sync.loc["wrk", "rps"], 1),
        "sync_workers_rps_ratio": round(sync.loc["lab", "rps"] / sync.loc["wrk", "rps"], 3),
        "run_dir": str(run_dir),
    })
    runs.save_table(run_dir, "wrk-vs-lab", pd.concat([turns.assign(server="gthread"),
                                                      sync_turns.assign(server="sync")]))
    runs.write_metadata(run_dir, {"benchmark": "harness", "figures": figures})
    return figures


@benchmark
def browser(trials: int = 15, warmup: int = 2, smtp_delay_s: float = 0.3) -> dict:
    """What a person sees in a real browser (headless Chromium): medians per variant and path. The required
    figures: navigation TTFB after the form post and its redirect, time from the click until fetch()'s answer
    is on screen, and INP as web-vitals reports it for the fetch() page."""
    run_dir = runs.new_run_dir("bench-browser")
    with Lab(run_dir=run_dir, smtp_delay_s=smtp_delay_s, web_workers=4, consumer_workers=2) as lab:
        result = experiments.measure_browser(lab, trials, warmup)
    medians = result.medians()

    def median(variant: str, path: str, metric: str) -> float | None:
        value = medians.loc[(variant, path), metric]
        return None if pd.isna(value) else round(float(value), 1)

    figures = {
        "ttfb_blocking_ms": median("form", "blocking", "ttfb_ms"),
        "ttfb_deferred_ms": median("form", "deferred", "ttfb_ms"),
        "feedback_blocking_ms": median("fetch", "blocking", "feedback_ms"),
        "feedback_deferred_ms": median("fetch", "deferred", "feedback_ms"),
        "inp_blocking_ms": median("fetch", "blocking", "inp_ms"),
        "inp_deferred_ms": median("fetch", "deferred", "inp_ms"),
        "delivered_deferred_ms": median("fetch", "deferred", "delivered_ms"),
        "inp_form_blocking_ms": median("form", "blocking", "inp_ms"),
        "inp_form_deferred_ms": median("form", "deferred", "inp_ms"),
        "inp_xhr_blocking_ms": median("xhr", "blocking", "inp_ms"),
        "inp_xhr_deferred_ms": median("xhr", "deferred", "inp_ms"),
        "medians": {f"{variant}/{path}": {metric.removesuffix("_ms"): median(variant, path, metric)
                                          for metric in experiments.BROWSER_METRICS}
                    for variant, path in medians.index},
        "trials_per_variant": trials,
        "inp_reported": {f"{variant}/{path}": int(count) for (variant, path), count in medians["inp_n"].items()},
        "failed_trials": len(result.failed),
        "emails_requested": result.emails_requested,
        "emails_received": result.emails_received,
        "smtp_delay_s": smtp_delay_s,
        "browser": str(result.trials["browser"].iloc[0]),
        "run_dir": str(run_dir),
    }
    result.trials.to_csv(run_dir / "browser-trials.csv", index=False)
    runs.write_metadata(run_dir, {"benchmark": "browser", "figures": figures})
    return figures


@benchmark
def queue(enqueues: int = 5000, idle_s: float = 5.0, pickups: int = 7, cpu_window_s: float = 8.0) -> dict:
    """The queue itself: a direct SQLite enqueue (native djhuey and through django.tasks), how fast the consumer
    drains no-op tasks (best of a few settings), the pickup delay after `idle_s` idle with Huey's default
    polling and with tuned polling, and what the tuned polling costs an idle consumer in CPU."""
    from helpers import queue_experiments as qe

    run_dir = runs.new_run_dir("bench-queue")
    drains = {}
    # Recording off and Huey's per-task log lines off: the drain measures the queue, not the instruments.
    with Lab(run_dir=run_dir, web_workers=1, huey_log_level="WARNING", **qe.TUNED_POLLING) as lab:
        by_api = qe.enqueue_cost_by_api(lab, enqueues, 4, "thread")
        for workers, worker_type in ((4, "thread"), (8, "thread"), (4, "process")):
            drains[f"{workers} {worker_type}"] = qe.enqueue_and_drain(lab, enqueues, workers, worker_type)
        drains["4 thread, Huey's INFO log lines"] = qe.enqueue_and_drain(lab, enqueues, 4, "thread",
                                                                         huey_log_level="INFO")
        lab.start_consumer(consumer_workers=4, consumer_worker_type="thread", record_task_events=True,
                           huey_log_level="WARNING")
        pickups = pd.concat([qe.pickup_after_idle(lab, [idle_s], pickups, polling, name)
                             for name, polling in (("default", qe.DEFAULT_POLLING), ("tuned", qe.TUNED_POLLING))])
        idle_cpu = {name: qe.consumer_idle_cpu(lab, polling, cpu_window_s)
                    for name, polling in (("default", qe.DEFAULT_POLLING), ("tuned", qe.TUNED_POLLING))}
    best = max(drains, key=lambda k: drains[k].drain_tasks_per_s)
    pickups_count = int(pickups.groupby("setting").size().min())
    pickup_p50 = pickups.groupby("setting")["pickup_ms"].median()
    figures = {
        "enqueue_p50_us": round(by_api.loc["huey", "enqueue_p50_us"], 1),
        "enqueue_p99_us": round(by_api.loc["huey", "enqueue_p99_us"], 1),
        "djtasks_enqueue_p50_us": round(by_api.loc["djtasks", "enqueue_p50_us"], 1),
        "djtasks_enqueue_p99_us": round(by_api.loc["djtasks", "enqueue_p99_us"], 1),
        "enqueues": enqueues,
        "drain_tasks_per_s": round(drains[best].drain_tasks_per_s),
        "drain_best_setting": best,
        "drain_tasks_per_s_by_setting": {k: round(v.drain_tasks_per_s) for k, v in drains.items()},
        "djtasks_drain_tasks_per_s": round(by_api.loc["djtasks", "drain_tasks_per_s"]),
        "pickup_p50_ms_default": round(pickup_p50["default"], 1),
        "pickup_p50_ms_tuned": round(pickup_p50["tuned"], 1),
        "pickup_max_ms_default": round(pickups.groupby("setting")["pickup_ms"].max()["default"], 1),
        "pickup_max_ms_tuned": round(pickups.groupby("setting")["pickup_ms"].max()["tuned"], 1),
        "pickup_idle_s": idle_s,
        "pickups_per_setting": pickups_count,
        "polling_default": qe.DEFAULT_POLLING,
        "polling_tuned": qe.TUNED_POLLING,
        "idle_consumer_cpu_pct_default": round(idle_cpu["default"], 2),
        "idle_consumer_cpu_pct_tuned": round(idle_cpu["tuned"], 2),
        "consumer_workers_pickup": 4,
        "huey_synchronous": "normal",
        "run_dir": str(run_dir),
    }
    pickups.to_csv(run_dir / "pickups.csv", index=False)
    runs.write_metadata(run_dir, {"benchmark": "queue", "figures": figures})
    return figures


@benchmark
def backends(enqueues: int = 5000, view_requests: int = 400, idle_s: float = 2.0, pickups: int = 7,
             producers: int = 4, rate_per_producer: float = 500.0, load_rate: float = 300.0) -> dict:
    """SQLite against Redis (the lab's own redis-server), side by side in one run (helpers.backends): direct
    enqueue, the deferred view, pickup after `idle_s` idle (SQLite polled with Huey's defaults and tuned; Redis
    in a blocking pop), drain by 1, 2 and 4 consumer processes (4 thread workers each), `producers` enqueuers
    against as many consumer processes, and the CPU the queue leaves the web server under load."""
    from helpers import backends as bk
    from helpers import queue_experiments as qe

    run_dir = runs.new_run_dir("bench-backends")
    with bk.side_by_side(run_dir, web_workers=2, smtp_delay_s=0.0, consumer_workers=4, huey_log_level="WARNING",
                         **qe.TUNED_POLLING) as labs:
        drains = bk.drain_sweep(labs, enqueues, (1, 2, 4), workers=4, turns=3)
        view = bk.view_summary(bk.view_enqueue(labs, view_requests, turns=2))
        pickup = bk.pickup_summary(bk.pickups(labs, [idle_s], pickups))
        contention, _ = bk.contention(labs, [(1, 1), (producers, producers)], rate_per_producer, 3.0)
        cpu = bk.cpu_share(labs, load_rate, 5.0, consumers=2, turns=2)
    figures = bk.key_figures(view, pickup, drains, contention, cpu)
    figures.update({
        "pickup_idle_s": idle_s,
        "drain_tasks": enqueues,
        "drain_turns": 3,
        "drain_workers_per_consumer": 4,
        "view_requests_per_endpoint": int(view["n"].min()),
        "load_rate_per_s": load_rate,
        "target_redis_pickup_p50_ms": 5,
        "target_met": bool(figures["redis_pickup_p50_ms"] <= 5),
        "run_dir": str(run_dir),
    })
    drains.to_csv(run_dir / "drains.csv", index=False)
    contention.to_csv(run_dir / "contention.csv", index=False)
    cpu.to_csv(run_dir / "cpu.csv", index=False)
    runs.write_metadata(run_dir, {"benchmark": "backends", "figures": figures})
    return figures


FAULT_LAB = dict(ledger=True, smtp_delay_s=0.1, smtp_timeout_s=1.0, ledger_deadline_s=2.0, ledger_retry_delay_s=0.25,
                 reconcile_every_s=0.5, web_workers=4, consumer_workers=4, consumer_initial_delay_s=0.01,
                 consumer_max_delay_s=0.1, huey_log_level="WARNING")


@benchmark
def faults(soak_s: float | None = None, kills: int = 5, rate: float = 20.0) -> dict:
    """Every fault of helpers.faults under load, both designs side by side (`kills` consumer SIGKILLs), then a
    soak of the ledger path at 80% of its measured capacity. `soak_s` defaults to LAB_SOAK_S or 180 s."""
    import os

    from helpers import faults as f

    soak_s = float(soak_s or os.environ.get("LAB_SOAK_S", 180))
    run_dir = runs.new_run_dir("bench-faults")
    # A slower SMTP server while the consumer is killed: each worker is mid-send most of the time (about 75% busy).
    plans = [f.FaultPlan("consumer_kill", rate=6.0, duration_s=4.0 * kills + 2, fault_at_s=1.5, fault_for_s=1.0,
                         kills=kills, smtp_delay_s=0.25)]
    plans += [f.FaultPlan(name, rate=rate, duration_s=6.0, fault_at_s=1.5, fault_for_s=2.0)
              for name in ("smtp_4xx", "smtp_5xx", "smtp_drop", "web_restart")]
    with Lab(run_dir=run_dir, **FAULT_LAB) as lab:
        table, timeline = f.run_faults(lab, plans)
        capacity = f.measure_capacity(lab)
        soak = f.soak(lab, rate=0.8 * capacity["capacity"], duration_s=soak_s)
    with_ledger, without = table[table["endpoint"] == "ledger"], table[table["endpoint"] == "deferred"]
    figures = {
        "faults_injected": int(timeline["fault"].count()),
        "consumer_kills": int((timeline["fault"] == "consumer_kill").sum()),
        "requested": int(with_ledger["requested"].sum()),
        "delivered": int(with_ledger["delivered"].sum()),
        "lost": int(with_ledger["lost"].sum()),
        "duplicated": int(with_ledger["duplicated"].sum()),
        "uncertain_attempts": int(with_ledger["ledger_uncertain_attempts"].sum()),
        "confirmed_by_provider": int(with_ledger["ledger_confirmed_by_provider"].sum()),
        "requested_without_ledger": int(without["requested"].sum()),
        "lost_without_ledger": int(without["lost"].sum()),
        "duplicated_without_ledger": int(without["duplicated"].sum()),
        "lost_by_fault": {row.fault: {"with_ledger": int(row.lost_l), "without_ledger": int(row.lost_d)}
                          for row in table.pivot_table(index="fault", columns="endpoint", values="lost")
                          .rename(columns={"ledger": "lost_l", "deferred": "lost_d"}).reset_index()
                          .itertuples()},
        "capacity_per_s": round(capacity["capacity"], 1),
        "capacity_web_per_s": round(capacity["web_rate"], 1),
        "capacity_drain_per_s": round(capacity["drain_rate"], 1),
        **soak,
        "smtp_delay_s": FAULT_LAB["smtp_delay_s"],
        "consumer_workers": FAULT_LAB["consumer_workers"],
        "run_dir": str(run_dir),
    }
    runs.save_table(run_dir, "faults", table)
    runs.save_table(run_dir, "fault-timeline", timeline)
    runs.write_metadata(run_dir, {"benchmark": "faults", "figures": figures, "lab_config": FAULT_LAB})
    return json.loads(json.dumps(figures, default=float))


def run(name: str) -> dict:
    if name not in BENCHMARKS:
        raise SystemExit(f"unknown benchmark {name!r}; choose from {', '.join(sorted(BENCHMARKS))}")
    started = time.monotonic()
    figures = BENCHMARKS[name]()
    figures["bench_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(figures))
    return figures
