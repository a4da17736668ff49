"""Fault injection on the running lab, and the account of what each fault cost: requested, delivered, lost,
duplicated, for the plain deferred design (`/email/deferred/`: Huey alone) and the job-ledger design
(`/email/ledger/`, labsite/ledger.py), under the very same fault at the very same moment.

An episode runs two open-loop loads side by side (one per design, each request to its own recipient
`<tag>-<endpoint>-<i>@example.test`), injects one fault while they run, ends it, waits until each design has
settled, then counts from the SMTP server's own record:
- requested: requests the site answered 202 (a request the client saw fail was never promised);
- delivered: requested recipients the SMTP server accepted at least once;
- lost: requested - delivered;
- duplicated: accepted copies beyond the first, per recipient (the same Message-ID twice, for the ledger).

Faults:
- consumer_kill: SIGKILL every consumer process (tasks in flight die with it), restart it `fault_for_s` later
  (with a slow SMTP server, `smtp_delay_s`, every worker is mid-send when it dies);
- smtp_4xx / smtp_5xx: the SMTP server refuses every message (451 / 554) for `fault_for_s`, then recovers;
- smtp_drop: the SMTP server cuts each connection when the message arrives, for `fault_for_s`;
- web_restart: SIGKILL gunicorn's master and workers mid-request, start it again on the same port.
"""

from __future__ import annotations

import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import pandas as pd

from helpers import runs
from helpers.instruments.cpu import rss_mb
from helpers.instruments.endpoints import load_spec
from helpers.instruments.loadgen import run_load
from helpers.instruments.queue_probe import QueueDepthSampler
from helpers.runs.bench import benchmark
from helpers.stack import Lab
from helpers.stack.smtp_sink import set_fault

FAULTS = ("consumer_kill", "smtp_4xx", "smtp_5xx", "smtp_drop", "web_restart")
DESIGNS = {"deferred": "without ledger", "ledger": "with ledger"}
GENERATOR_START_S = 1.0  # about when run_load's generator processes are ready and the load starts


@dataclass
class FaultPlan:
    fault: str
    rate: float = 20.0  # requests/s to each design
    duration_s: float = 6.0  # load per design
    fault_at_s: float = 1.5  # first injection, from the load's start
    fault_for_s: float = 1.5  # how long the fault lasts (consumer: how long it stays dead)
    kills: int = 1  # consumer_kill: injections, spread over the load
    smtp_delay_s: float | None = None  # the SMTP server's delay during the episode (None: the lab's own)
    settle_timeout_s: float = 90.0


# -- injecting ------------------------------------------------------------------------------------------------

def inject(lab: Lab, fault: str, smtp_delay_s: float | None = None) -> None:
    """Start the fault; `smtp_delay_s` is kept through the SMTP server's fault modes (None: the lab's own)."""
    if fault == "consumer_kill":
        lab.queue.kill_workers()
    elif fault == "smtp_4xx":
        set_fault(lab.smtp_control, "refuse", 451, delay_s=smtp_delay_s)
    elif fault == "smtp_5xx":
        set_fault(lab.smtp_control, "refuse", 554, delay_s=smtp_delay_s)
    elif fault == "smtp_drop":
        set_fault(lab.smtp_control, "drop", delay_s=smtp_delay_s)
    elif fault == "web_restart":
        lab.restart_web(crash=True)
    else:
        raise ValueError(f"unknown fault {fault!r}; choose from {FAULTS}")


def recover(lab: Lab, fault: str, smtp_delay_s: float | None = None) -> None:
    if fault == "consumer_kill":
        lab.start_consumer()
    elif fault.startswith("smtp_"):
        set_fault(lab.smtp_control, "ok", delay_s=smtp_delay_s)


def _inject_on_schedule(lab: Lab, plan: FaultPlan, load_starts_at: float, log: list) -> None:
    """Inject the fault (plan.kills times for consumer_kill) and end it, at times counted from the load's start."""
    times = [plan.fault_at_s]
    if plan.fault == "consumer_kill" and plan.kills > 1:
        spacing = max(plan.fault_for_s + 2.5, (plan.duration_s - plan.fault_at_s - 1.0) / plan.kills)
        times = [plan.fault_at_s + k * spacing for k in range(plan.kills)]
    for at in times:
        time.sleep(max(0.0, load_starts_at + at - time.monotonic()))
        started = time.monotonic() - load_starts_at
        inject(lab, plan.fault, plan.smtp_delay_s)
        if plan.fault != "web_restart":  # a restart is its own recovery
            time.sleep(plan.fault_for_s)
            recover(lab, plan.fault, plan.smtp_delay_s)
        log.append({"fault": plan.fault, "injected_at_s": started, "recovered_at_s": time.monotonic() - load_starts_at})


# -- counting -------------------------------------------------------------------------------------------------

def _recipient_pattern(tag: str, endpoint: str) -> re.Pattern:
    return re.compile(rf"^{re.escape(tag)}-{endpoint}-(\d+)@example\.test$")


def received_by_request(lab: Lab, tag: str, endpoint: str) -> pd.Series:
    """Copies the SMTP server accepted per request number i of this episode and design."""
    deliveries = lab.deliveries()
    pattern = _recipient_pattern(tag, endpoint)
    numbers = deliveries["rcpt_tos"].map(lambda r: (m := pattern.match(r[0] if r else "")) and int(m.group(1)))
    return numbers.dropna().astype(int).value_counts()


def ledger_jobs(lab: Lab, tag: str) -> dict:
    """The ledger's account of this episode's jobs (helpers.stack.lab.Lab.ledger_jobs)."""
    return lab.ledger_jobs(f"{tag}-ledger-%")


def wait_until_settled(lab: Lab, tag: str, timeout_s: float, quiet_s: float = 1.0) -> float:
    """Until the ledger has no job of the episode left pending or sending, the queue (and Huey's schedule of
    retries) is empty and the SMTP server has accepted nothing new for `quiet_s`: whatever is not delivered
    then, is lost."""
    started = time.monotonic()
    last_count, last_change = lab.emails_received(), time.monotonic()
    while time.monotonic() - started < timeout_s:
        time.sleep(0.2)
        count = lab.emails_received()
        if count != last_count:
            last_count, last_change = count, time.monotonic()
        jobs = ledger_jobs(lab, tag)
        if (jobs["pending"] + jobs["sending"] == 0 and lab.queue_depth() == 0 and lab.queue.scheduled() == 0
                and time.monotonic() - last_change >= quiet_s):
            return time.monotonic() - started
    return time.monotonic() - started


def account(records: pd.DataFrame, received: pd.Series) -> dict:
    """requested / delivered / lost / duplicated from the client's records and the SMTP server's."""
    accepted = set(records.loc[records["status"] == 202, "i"].astype(int))
    copies = received.reindex(sorted(accepted), fill_value=0)
    return {
        "sent": len(records),
        "requested": len(accepted),
        "delivered": int((copies > 0).sum()),
        "lost": int((copies == 0).sum()),
        "duplicated": int((copies - 1).clip(lower=0).sum()),
        "refused_503": int((records["status"] == 503).sum()),
        "server_5xx": int(((records["status"] >= 500) & (records["status"] != 503)).sum()),
        "client_errors": int(records["error"].notna().sum()),
        # answered with an error or never answered, yet delivered: work the client would wrongly retry
        "delivered_unacknowledged": int(sum(1 for i in received.index if i not in accepted)),
    }


# -- one episode ----------------------------------------------------------------------------------------------

_episodes = iter(range(1, 10**9))


def run_episode(lab: Lab, plan: FaultPlan) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One fault under load, both designs side by side. Returns (one row per design, the fault's timeline)."""
    tag = f"{plan.fault.replace('_', '')}{next(_episodes)}t{int(time.time()) % 100000}"
    specs = {endpoint: replace(load_spec(lab, endpoint, mode="open", rate=plan.rate, arrival="poisson",
                                         connections=64, duration_s=plan.duration_s, warmup_s=0.0, timeout_s=15.0,
                                         processes=1, seed=len(tag)),
                               form={"to": f"{tag}-{endpoint}-{{i}}@example.test"})
             for endpoint in DESIGNS}
    timeline: list[dict] = []
    set_fault(lab.smtp_control, "ok", delay_s=plan.smtp_delay_s)
    with ThreadPoolExecutor(len(specs)) as pool:
        futures = {endpoint: pool.submit(run_load, spec) for endpoint, spec in specs.items()}
        load_starts_at = time.monotonic() + GENERATOR_START_S
        # In this (the lab's) thread: a process restarted from a thread that then ends would get the parent-death
        # signal the lab arms for every child (PR_SET_PDEATHSIG follows the thread that forked it).
        _inject_on_schedule(lab, plan, load_starts_at, timeline)
        results = {endpoint: future.result() for endpoint, future in futures.items()}
    settle_s = wait_until_settled(lab, tag, plan.settle_timeout_s)
    set_fault(lab.smtp_control, "ok")
    rows = []
    for endpoint, design in DESIGNS.items():
        row = {"fault": plan.fault, "design": design, "endpoint": endpoint, "tag": tag, "rate": plan.rate,
               "duration_s": plan.duration_s, "injections": len(timeline), "settle_s": settle_s,
               **account(results[endpoint].records, received_by_request(lab, tag, endpoint))}
        if endpoint == "ledger":
            jobs = ledger_jobs(lab, tag)
            row.update({f"ledger_{k}": v for k, v in jobs.items()})
        rows.append(row)
    return pd.DataFrame(rows), pd.DataFrame(timeline)


def run_faults(lab: Lab, plans: list[FaultPlan], progress=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every plan in turn; the queue is drained and the SMTP server healthy between them."""
    rows, timelines = [], []
    for plan in plans:
        set_fault(lab.smtp_control, "ok")
        lab.wait_until_drained()
        table, timeline = run_episode(lab, plan)
        rows.append(table)
        timelines.append(timeline)
        if progress is not None:
            progress.update(1)
    return pd.concat(rows, ignore_index=True), pd.concat(timelines, ignore_index=True)


def verdict(table: pd.DataFrame) -> dict[str, bool]:
    with_ledger = table[table["endpoint"] == "ledger"]
    without = table[table["endpoint"] == "deferred"]
    return {
        "with ledger: lost 0 under every fault": bool((with_ledger["lost"] == 0).all()),
        "with ledger: duplicated 0 under every fault": bool((with_ledger["duplicated"] == 0).all()),
        "with ledger: the ledger saw every accepted job delivered": bool(
            (with_ledger["ledger_delivered"] == with_ledger["requested"]).all()),
        # The SMTP faults lose every send they refuse (no retries): the problem shows whatever the kill's timing.
        "without ledger: the faults lost accepted emails": bool(without["lost"].sum() > 0),
    }


# -- overload: a bounded backlog ------------------------------------------------------------------------------

def measure_backlog(lab: Lab, max_backlog: int, rate: float, duration_s: float, drain_timeout_s: float = 300.0
                    ) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """Open-loop load on /email/deferred/ faster than the consumer drains, with the web server restarted with
    LAB_MAX_BACKLOG = max_backlog (0: unbounded). Returns (figures, queue depth over time, request records)."""
    lab.wait_until_drained()
    if lab.config.max_backlog != max_backlog:
        lab.restart_web(max_backlog=max_backlog)
    tag = f"overload{next(_episodes)}t{int(time.time()) % 100000}"
    spec = replace(load_spec(lab, "deferred", mode="open", rate=rate, arrival="constant", connections=128,
                             duration_s=duration_s, warmup_s=0.0, timeout_s=30.0),
                   form={"to": f"{tag}-deferred-{{i}}@example.test"})
    with QueueDepthSampler(lab.queue, interval_s=0.05) as sampler:
        started = time.time()
        result = run_load(spec)
        load_done = time.time()
        lab.wait_until_drained(timeout=drain_timeout_s)
        drained = time.time()
    depth = sampler.frame().assign(t_s=lambda f: f["t"] - started, max_backlog=max_backlog)
    wait_until_settled(lab, tag, 60.0, quiet_s=1.0)
    records = result.records.assign(max_backlog=max_backlog)
    counts = account(records, received_by_request(lab, tag, "deferred"))
    ok = records[records["status"] == 202]
    shed = records[records["status"] == 503]
    figures = {"max_backlog": max_backlog, "rate": rate, "duration_s": duration_s, **counts,
               "max_depth": int(depth["depth"].max()) if len(depth) else 0,
               "accepted_p99_ms": float(ok["latency_ms"].quantile(0.99)) if len(ok) else None,
               "refused_p99_ms": float(shed["latency_ms"].quantile(0.99)) if len(shed) else None,
               "drain_after_load_s": drained - load_done}
    return figures, depth, records


def backlog_verdict(bounded: dict, unbounded: dict, web_workers: int) -> dict[str, bool]:
    """The bound holds (give or take one request per web worker racing between count and enqueue), the
    overflow was shed with 503, and nothing accepted was lost either way."""
    return {
        "bounded: queue depth stayed within the bound": bounded["max_depth"] <= bounded["max_backlog"] + web_workers,
        "bounded: the overflow was answered 503 with Retry-After": bounded["refused_503"] > 0,
        "unbounded: the queue grew past the bound": unbounded["max_depth"] > bounded["max_backlog"] + web_workers,
        "no accepted email lost, bounded or not": bounded["lost"] == 0 and unbounded["lost"] == 0,
        "no server error but the 503s": bounded["server_5xx"] == 0 and unbounded["server_5xx"] == 0,
    }


# -- soak -----------------------------------------------------------------------------------------------------

def lab_rss_mb(lab: Lab) -> float:
    """Resident memory of every process the lab runs, in MiB."""
    return rss_mb([process.pid for process in lab.processes.values()])


def measure_capacity(lab: Lab, jobs: int = 200) -> dict:
    """What the ledger path sustains end to end: the consumer is stopped, `jobs` are accepted as fast as a
    closed loop can, then the consumer is started and the drain timed (jobs/s from the first delivery to
    the last). The web side's own rate is reported beside; the capacity is the smaller."""
    tag = f"capacity{next(_episodes)}t{int(time.time()) % 100000}"
    lab.stop_consumer()
    spec = replace(load_spec(lab, "ledger", mode="closed", connections=8, duration_s=3.0, warmup_s=0.0),
                   form={"to": f"{tag}-ledger-{{i}}@example.test"})
    web = run_load(spec).summary
    lab.start_consumer()
    before = lab.emails_received()
    accepted = ledger_jobs(lab, tag)["jobs"]
    lab.wait_for_emails(before + accepted, timeout=300)
    wait_until_settled(lab, tag, 60.0, quiet_s=0.5)
    got = lab.deliveries().iloc[before:]
    span = float(got["accepted_at"].max() - got["accepted_at"].min()) if len(got) > 1 else float("nan")
    drain_rate = (len(got) - 1) / span if span and span > 0 else float("nan")
    return {"web_rate": web["throughput"], "drain_rate": drain_rate, "capacity": min(web["throughput"], drain_rate),
            "capacity_jobs": accepted}


def soak(lab: Lab, rate: float, duration_s: float, warmup_s: float = 10.0) -> dict:
    """The ledger path at `rate` for `duration_s`: errors, 5xx, memory growth of every lab process (measured
    from the end of the warm-up), and the episode's own requested/delivered/lost/duplicated."""
    tag = f"soak{next(_episodes)}t{int(time.time()) % 100000}"
    spec = replace(load_spec(lab, "ledger", mode="open", rate=rate, arrival="poisson", connections=128,
                             duration_s=duration_s, warmup_s=warmup_s, timeout_s=30.0),
                   form={"to": f"{tag}-ledger-{{i}}@example.test"})
    rss: dict[str, float] = {}

    def sample_rss():
        time.sleep(GENERATOR_START_S + warmup_s)
        rss["start"] = lab_rss_mb(lab)

    sampler = threading.Thread(target=sample_rss)
    sampler.start()
    result = run_load(spec)
    sampler.join()
    rss["end"] = lab_rss_mb(lab)
    wait_until_settled(lab, tag, 120.0)
    records = result.records
    counts = account(records, received_by_request(lab, tag, "ledger"))
    s = result.summary
    return {"soak_s": duration_s, "soak_rate": rate, "soak_requests": int(len(records)),
            "soak_5xx": int((records["status"] >= 500).sum()), "soak_errors": int(records["error"].notna().sum()),
            "soak_rss_start_mb": round(rss["start"], 1), "soak_rss_end_mb": round(rss["end"], 1),
            "soak_rss_growth_mb": round(rss["end"] - rss["start"], 1),
            "soak_latency_p50_ms": s["latency_p50_ms"], "soak_latency_p99_ms": s["latency_p99_ms"],
            "soak_lost": counts["lost"], "soak_duplicated": counts["duplicated"]}


# -- the figures notebook 05 records and `bench faults` prints -----------------------------------------------

def key_figures(table: pd.DataFrame, timeline: pd.DataFrame, overload: pd.DataFrame | None = None,
                capacity: dict | None = None, soak_figures: dict | None = None) -> dict:
    """From run_faults' table and timeline, and (when measured) the overload runs, the capacity and the soak."""
    with_ledger, without = table[table["endpoint"] == "ledger"], table[table["endpoint"] == "deferred"]
    lost = table.pivot_table(index="fault", columns="endpoint", values="lost", aggfunc="sum")
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
        "lost_by_fault": {fault: {"with_ledger": int(row.get("ledger", 0)),
                                  "without_ledger": int(row.get("deferred", 0))} for fault, row in lost.iterrows()},
    }
    if overload is not None:
        figures["overload"] = overload.to_dict("records")
    if capacity is not None:
        figures.update({"capacity_per_s": round(capacity["capacity"], 1),
                        "capacity_web_per_s": round(capacity["web_rate"], 1),
                        "capacity_drain_per_s": round(capacity["drain_rate"], 1)})
    figures.update(soak_figures or {})
    return figures


FAULT_LAB = dict(ledger=True, smtp_delay_s=0.1, smtp_timeout_s=1.0, ledger_deadline_s=2.0, ledger_retry_delay_s=0.25,
                 reconcile_every_s=0.5, web_workers=4, consumer_workers=4, consumer_initial_delay_s=0.01,
                 consumer_max_delay_s=0.1, huey_log_level="WARNING")


@benchmark("faults")
def faults_bench(run_dir, soak_s: float | None = None, kills: int = 5, rate: float = 20.0) -> dict:
    """Every fault under load, both designs side by side (`kills` consumer SIGKILLs), then a soak of the ledger
    path at 80% of its measured capacity. `soak_s` defaults to LAB_SOAK_S or 180 s."""
    soak_s = float(soak_s or os.environ.get("LAB_SOAK_S", 180))
    # A slower SMTP server while the consumer is killed: each worker is mid-send most of the time (about 75% busy).
    plans = [FaultPlan("consumer_kill", rate=6.0, duration_s=4.0 * kills + 2, fault_at_s=1.5, fault_for_s=1.0,
                       kills=kills, smtp_delay_s=0.25)]
    plans += [FaultPlan(name, rate=rate, duration_s=6.0, fault_at_s=1.5, fault_for_s=2.0)
              for name in ("smtp_4xx", "smtp_5xx", "smtp_drop", "web_restart")]
    with Lab(run_dir=run_dir, **FAULT_LAB) as lab:
        table, timeline = run_faults(lab, plans)
        capacity = measure_capacity(lab)
        soaked = soak(lab, rate=0.8 * capacity["capacity"], duration_s=soak_s)
    runs.save_table(run_dir, "faults", table)
    runs.save_table(run_dir, "fault-timeline", timeline)
    return {**key_figures(table, timeline, capacity=capacity, soak_figures=soaked),
            "smtp_delay_s": FAULT_LAB["smtp_delay_s"], "consumer_workers": FAULT_LAB["consumer_workers"]}
