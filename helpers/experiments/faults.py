"""Fault injection on the running lab, and the account of what each fault cost each of four designs of the same
deferred email, on the same queue backend, under the very same fault at the very same moment:

- plain (`/email/deferred/`): enqueue, no retries;
- retries (`/email/deferred/retries/`): the queue's own retry mechanism (not offered by Django's Tasks API);
- production (`/email/deferred/production/`): the settings the queue's documentation recommends for production;
- ledger (`/email/ledger/`, labsite/ledger.py): a job row, enqueued on commit, retried, reconciled, checked.

An episode runs one open-loop load per design side by side (each request to its own recipient
`<tag>-<endpoint>-<i>@example.test`), injects one fault while they run, ends it, waits until the lab has settled
(helpers.protocols.settle: flagged, not hidden, when it makes no progress for `settle_timeout_s`), then counts message
by message from the SMTP server's own record (helpers.protocols.messages.account), read again `late_check_s` after
settling so that a copy still on its way is counted too; the ledger's own account is held against that record
message by message. The transient faults (SMTP 4xx, dropped connections, a provider stalling each command, consumer
kills, a web server crash) end, and a design may survive them; the permanent one (550, no such user, for the odd
request numbers of its episode) does not, and a design must report those emails failed, not lose or hide them. One
episode is the ledger's alone: slow_commit, its requests holding their transaction open `hold_ms` after the job is
written (a view with more to do after accepting the email), where a task run before the commit finds no job and
leaves it to the reconciler.

The faults: helpers.protocols.injection; the overload of a bounded backlog: helpers.protocols.backlog. The ledger's
SQLite database (like Huey's) runs in WAL mode with synchronous=NORMAL: a commit survives a process crash, not
necessarily a power cut or a kernel crash.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace

import pandas as pd

from helpers import runs
from helpers.instruments.cpu import rss_mb
from helpers.instruments.endpoints import load_spec
from helpers.instruments.loadgen import run_load
from helpers.protocols import loads
from helpers.protocols.injection import PERMANENT_FAULTS, TRANSIENT_SMTP_FAULTS, inject, recover
from helpers.protocols.messages import account, new_tag, received_by_request, recipient
from helpers.protocols.settle import LATE_CHECK_S, settle, stuck
from helpers.runs.bench import benchmark
from helpers.stack import Lab
from helpers.stack.smtp_sink import set_fault, set_provider

# design -> the endpoint (helpers.instruments.endpoints) that serves it
DESIGNS = {"plain": "deferred", "retries": "retries", "production": "production", "ledger": "ledger"}
BACKENDS = ("huey_sqlite", "celery_redis", "djtasks_db_postgres")  # full mode; quick mode: the first
TRANSIENT_FAULTS = ("consumer_kill", *TRANSIENT_SMTP_FAULTS, "web_restart")
GENERATOR_START_S = 1.0  # about when run_load's generator processes are ready and the load starts
STALL_SHARE_OF_LEASE = 0.4  # smtp_stall holds each SMTP command this share of the ledger's lease
SLOW_COMMIT = "slow_commit"  # not injected: the ledger's requests hold their transaction open (FaultPlan.hold_ms)
SET_UP_FAULTS = (*PERMANENT_FAULTS, SLOW_COMMIT)  # in place before the loads begin, nothing to inject or end


@dataclass
class FaultPlan:
    fault: str
    rate: float = 20.0  # requests/s to each design
    duration_s: float = 6.0  # load per design
    fault_at_s: float = 1.5  # first injection, from when every design's load is seen running
    fault_for_s: float = 1.5  # how long the fault lasts (consumer: how long it stays dead)
    kills: int = 1  # consumer_kill: injections, spread over the load
    smtp_delay_s: float | None = None  # the SMTP server's delay during the episode (None: the lab's own)
    settle_timeout_s: float = 90.0  # settling gives up after this long without progress
    record_first: bool = False  # the provider records a message before its delay (kills land after its 250)
    stall_s: float | None = None  # smtp_stall: each command's stall (None: STALL_SHARE_OF_LEASE of the lease)
    hold_ms: int = 0  # the ledger's requests hold their transaction open this long after writing the job
    designs: tuple[str, ...] | None = None  # the designs it is played on (None: every design the lab offers)


def lease_s(lab: Lab) -> float:
    """The ledger's lease in this lab (its settings' default: 3 x the SMTP client timeout)."""
    return lab.config.ledger_lease_s or 3 * lab.config.smtp_timeout_s


def unknown_users(tag: str) -> str:
    """The recipients smtp_550 refuses for good: the odd request numbers of the episode, every design."""
    return rf"^{re.escape(tag)}-[a-z]+-\d*[13579]@"


def permanent_numbers(plan: FaultPlan, numbers: Iterable[int]) -> set[int]:
    """The request numbers whose recipient the provider refuses for good in this plan's episode."""
    return {i for i in numbers if i % 2} if plan.fault in PERMANENT_FAULTS else set()


def offered_designs(lab: Lab) -> list[str]:
    """The designs the lab's site offers on its queue (it answers 404 for one its queue API has not: Django's Tasks
    API has no retries), asked of the site itself."""
    offered = []
    for design, endpoint in DESIGNS.items():
        if endpoint in ("deferred", "ledger"):
            offered.append(design)
            continue
        response = lab.http.post(f"/email/deferred/{design}/", {"to": "design-probe@example.test"})
        if response.status == 202:
            offered.append(design)
        elif response.status != 404:
            raise RuntimeError(f"/email/deferred/{design}/ answered {response.status}: {response.body[:200]!r}")
    return offered


# -- injecting (helpers.protocols.injection), on a schedule ----------------------------------------------------

KILL_GAP_S = 2.5  # load between a restarted consumer and the next kill


def restart_allowance_s(lab: Lab) -> float:
    """How long a consumer restart is given: twice its last start (on two busy cores one after a kill took 2 to 7 s:
    Celery's and django-tasks-db's workers load Django first)."""
    return 2 * (lab.consumer_start_s or 1.0)


def kill_cycle_s(lab: Lab, plan: FaultPlan) -> float:
    """From one kill to the next: dead for fault_for_s, restarted, then KILL_GAP_S of load."""
    return plan.fault_for_s + restart_allowance_s(lab) + KILL_GAP_S


def load_s(lab: Lab, plan: FaultPlan) -> float:
    """How long the episode's loads run: the plan's duration, and for kills at least until 2 s after the last
    restart, timed on this lab's consumer (so that no kill comes after the load, whatever the backend)."""
    if plan.fault != "consumer_kill":
        return plan.duration_s
    last_kill_at = plan.fault_at_s + (plan.kills - 1) * kill_cycle_s(lab, plan)
    return max(plan.duration_s, last_kill_at + plan.fault_for_s + (lab.consumer_start_s or 1.0) + 2.0)


def settle_limit_s(plan: FaultPlan) -> float:
    """How long settling after `plan`'s load may take in all (settle's limit_s): ten times its no-progress timeout,
    plus twice the load's duration. A long kill episode offers more than a consumer killed every few seconds takes
    (`bench faults -p kills 100`: 14 min of load left a backlog Huey-SQLite drained in 16 min), and settling waits
    while the backlog shrinks."""
    return 10 * plan.settle_timeout_s + 2 * plan.duration_s

def _inject_on_schedule(lab: Lab, plan: FaultPlan, tag: str, load_starts_at: float, log: list, running=()) -> None:
    """Inject the fault (plan.kills times for consumer_kill) and end it, at times counted from the load's start;
    the log says whether every load (futures of run_load) was still running when the fault began. A permanent fault
    was set before the loads began (the odd recipients never existed), and so was a slow commit: their entry marks
    the moment only."""
    times = [plan.fault_at_s]
    if plan.fault == "consumer_kill" and plan.kills > 1:
        times = [plan.fault_at_s + k * kill_cycle_s(lab, plan) for k in range(plan.kills)]
    stall_s = plan.stall_s or STALL_SHARE_OF_LEASE * lease_s(lab)
    for at in times:
        time.sleep(max(0.0, load_starts_at + at - time.monotonic()))
        started = time.monotonic() - load_starts_at
        loads_running = not any(load.done() for load in running)
        if plan.fault not in SET_UP_FAULTS:
            inject(lab, plan.fault, plan.smtp_delay_s, plan.fault_for_s, stall_s=stall_s)
        if plan.fault not in ("web_restart", *SET_UP_FAULTS):  # a restart is its own recovery
            time.sleep(plan.fault_for_s)
            recover(lab, plan.fault, plan.smtp_delay_s)
        log.append({"fault": plan.fault, "injected_at_s": started, "recovered_at_s": time.monotonic() - load_starts_at,
                    "loads_running": loads_running})


# -- counting -------------------------------------------------------------------------------------------------

def ledger_jobs(lab: Lab, tag: str, i: int | str = "%") -> dict:
    """The ledger's account of this episode's jobs, or of request i's (helpers.instruments.ledger.LedgerReader.jobs)."""
    return lab.ledger.jobs(recipient(tag, "ledger", i))


def ledger_states(lab: Lab, tag: str, numbers: Iterable[int]) -> pd.Series:
    """Each request's job state in the ledger ("none": the request left no job), read in one query and kept per
    recipient, so that the ledger is held against the SMTP record message by message."""
    by_recipient = lab.ledger.states(recipient(tag, "ledger", "%"))
    return pd.Series({i: by_recipient.get(recipient(tag, "ledger", i), "none") for i in sorted(numbers)},
                     dtype=object)


def open_work(lab: Lab, tag: str) -> int:
    """What settling waits for besides the queue: the episode's ledger jobs not closed yet (pending, sending), and
    tasks a worker holds unacknowledged (Celery: a retry waiting out its countdown in the worker, a task of a killed
    worker the broker hands out again)."""
    jobs = ledger_jobs(lab, tag)
    return jobs["pending"] + jobs["sending"] + int(lab.queue.counts().get("unacked") or 0)


def settle_and_read(lab: Lab, tag: str, endpoints: Iterable[str], timeout_s: float, quiet_s: float = 1.0,
                    limit_s: float | None = None) -> tuple[dict, dict[str, pd.Series]]:
    """Wait until the lab settled (helpers.protocols.settle, the episode's open work among its work); return that
    outcome and the copies per request of each design at that moment, the baseline of late_copies."""
    settled = settle({"lab": lab}, timeout_s, quiet_s, limit_s=limit_s,
                     open_work=lambda lab: open_work(lab, tag))["lab"]
    return settled, {endpoint: received_by_request(lab, tag, endpoint) for endpoint in endpoints}


# -- one episode ----------------------------------------------------------------------------------------------

@dataclass
class Episode:
    """One fault played on every design offered: what the clients saw, and what the SMTP server held when it
    settled."""
    plan: FaultPlan
    tag: str
    records: dict[str, pd.DataFrame]  # per endpoint, the load generator's records
    timeline: pd.DataFrame
    settle: dict  # settled, settle_s
    at_settle: dict[str, pd.Series]  # per endpoint, copies per request when the lab settled
    consumer_workers: int  # workers (all processes) that could hold a task when the consumer was killed
    replays: int = 0  # times it was played again because the fault missed a design's load
    backend: str = ""
    stuck_in_queue: int = 0  # tasks the queue still held as taken when the lab settled (its own account)

    @property
    def met_every_load(self) -> bool:
        """Whether the fault reached the loads: every design's was still running when it began, and a web server
        crash made requests fail (a generator starved of CPU may send nothing while the server is down). Exposure
        only, never the outcome counted (lost, duplicated)."""
        if not self.timeline["loads_running"].all():
            return False
        return self.plan.fault != "web_restart" or any(
            (records["error"].notna() | (records["status"] >= 500)).any() for records in self.records.values())


def play(lab: Lab, plan: FaultPlan, designs: Iterable[str] = tuple(DESIGNS), replays: int = 2) -> list[Episode]:
    """One fault under load, every design side by side (counted later: tally). Each design's generator process
    picks its own start: on an overloaded machine they can start seconds apart, or one can be starved of CPU while
    the web server restarts, and a fault can miss one design's load. Such an episode is played again (up to
    `replays` times, with a new tag: see Episode.met_every_load). Returns every attempt: an earlier attempt's
    messages were requested too, and what became of them is counted like the last's."""
    played = []
    for replay in range(replays + 1):
        episode = replace(_play_once(lab, plan, list(designs)), replays=replay)
        played.append(episode)
        if episode.met_every_load:
            break
        lab.wait_until_drained()
    return played


def _play_once(lab: Lab, plan: FaultPlan, designs: list[str]) -> Episode:
    """One attempt of play()."""
    plan = replace(plan, duration_s=load_s(lab, plan))
    tag = new_tag(plan.fault.replace("_", ""))
    endpoints = [DESIGNS[d] for d in designs]
    specs = {endpoint: replace(load_spec(lab, endpoint, mode="open", rate=plan.rate, arrival="poisson",
                                         connections=64, duration_s=plan.duration_s, warmup_s=0.0, timeout_s=15.0,
                                         processes=1, seed=len(tag) + k),
                               form={"to": recipient(tag, endpoint),
                                     **({"hold_ms": str(plan.hold_ms)} if endpoint == "ledger" and plan.hold_ms
                                        else {})})
             for k, endpoint in enumerate(endpoints)}
    timeline: list[dict] = []
    set_fault(lab.smtp_control, "ok", delay_s=plan.smtp_delay_s)
    set_provider(lab.smtp_control, record_first=plan.record_first,
                 unknown_users=unknown_users(tag) if plan.fault in PERMANENT_FAULTS else None)
    # each load runs: the ledger's first job is written, every other design's first email has arrived (its send
    # takes the SMTP delay: the fault comes that much later, never before a load began); an even request number
    # arrives under a permanent fault too
    signs = [(lambda: ledger_jobs(lab, tag)["jobs"] > 0) if endpoint == "ledger"
             else loads.recipient_arrived(lab, f"{tag}-{endpoint}-") for endpoint in endpoints]
    with loads.in_background(specs) as futures:
        load_starts_at = loads.started(signs, futures.values())
        # In this (the lab's) thread: a process restarted from a thread that then ends would get the parent-death
        # signal the lab arms for every child (PR_SET_PDEATHSIG follows the thread that forked it).
        _inject_on_schedule(lab, plan, tag, load_starts_at, timeline, futures.values())
        records = {endpoint: future.result().records for endpoint, future in futures.items()}
    settled, at_settle = settle_and_read(lab, tag, endpoints, plan.settle_timeout_s, limit_s=settle_limit_s(plan))
    held = stuck(lab)
    set_fault(lab.smtp_control, "ok")
    set_provider(lab.smtp_control)
    workers = lab.config.consumer_workers * lab.config.consumer_processes
    return Episode(plan, tag, records, pd.DataFrame(timeline), settled, at_settle, workers,
                   backend=lab.config.queue_backend, stuck_in_queue=held)


def tally(lab: Lab, episode: Episode) -> pd.DataFrame:
    """One row per design: the episode's account from the SMTP record and the ledger as they are now."""
    rows = []
    for design, endpoint in DESIGNS.items():
        if endpoint not in episode.records:
            continue
        records = episode.records[endpoint]
        received = received_by_request(lab, episode.tag, endpoint)
        numbers = set(records["i"].astype(int)) | set(received.index)
        ledger = ledger_states(lab, episode.tag, numbers) if design == "ledger" else None
        row = {"backend": episode.backend, "fault": episode.plan.fault,
               "kind": ("permanent" if episode.plan.fault in PERMANENT_FAULTS
                        else "slow commit" if episode.plan.fault == SLOW_COMMIT else "transient"),
               "design": design, "endpoint": endpoint, "tag": episode.tag,
               "rate": episode.plan.rate, "duration_s": episode.plan.duration_s, "injections": len(episode.timeline),
               "consumer_workers": episode.consumer_workers, "replays": episode.replays,
               "met_every_load": episode.met_every_load, "stuck_in_queue": episode.stuck_in_queue, **episode.settle,
               **account(records, received, episode.at_settle[endpoint], ledger,
                         permanent_numbers(episode.plan, numbers))}
        if design == "ledger":
            row.update({f"ledger_{k}": v for k, v in ledger_jobs(lab, episode.tag).items()})
        rows.append(row)
    return pd.DataFrame(rows)


def run_faults(lab: Lab, plans: list[FaultPlan], late_check_s: float = LATE_CHECK_S, progress=None
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every plan in turn on every design the lab offers (the queue drained and the SMTP server healthy between
    them), then, `late_check_s` after the last one settled, every episode's account, replayed attempts included: an
    earlier episode's late copies had the episodes after it to arrive as well. Returns (one row per episode and
    design, the faults' timeline)."""
    designs = offered_designs(lab)
    episodes = []
    for plan in plans:
        set_fault(lab.smtp_control, "ok")
        lab.wait_until_drained()
        episodes += play(lab, plan, [d for d in designs if plan.designs is None or d in plan.designs])
        if progress is not None:
            progress.update(1)
    time.sleep(late_check_s)
    timeline = pd.concat([episode.timeline.assign(backend=episode.backend, tag=episode.tag)
                          for episode in episodes], ignore_index=True)
    return pd.concat([tally(lab, episode) for episode in episodes], ignore_index=True), timeline


def run_episode(lab: Lab, plan: FaultPlan, late_check_s: float = LATE_CHECK_S) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One fault under load, every design side by side. Returns (one row per design, the fault's timeline)."""
    return run_faults(lab, [plan], late_check_s)


def fault_lab(backend: str, **config) -> dict:
    """The Lab's configuration for the fault episodes on `backend`: FAULT_LAB, the backend's polling tuned (a
    restarted consumer starts at once), and, on Celery, the worker settings its docs recommend for production
    (prefetch multiplier 1; the Redis transport's visibility timeout shortened so a killed worker's task comes back
    within the episode, not after an hour)."""
    from helpers.stack.queues import backend_class

    chosen = {**FAULT_LAB, **backend_class(backend).tuned_worker_config, "queue_backend": backend, **config}
    if backend.startswith("celery"):
        chosen["site_env"] = {"LAB_CELERY_PREFETCH_MULTIPLIER": "1", "LAB_CELERY_VISIBILITY_TIMEOUT": "10",
                              **chosen.get("site_env", {})}
    return chosen


def concat(played: Iterable[tuple[pd.DataFrame, pd.DataFrame]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """run_faults' (table, timeline) of several labs, as one."""
    tables, timelines = zip(*played, strict=True)
    return pd.concat(tables, ignore_index=True), pd.concat(timelines, ignore_index=True)


def run_backends(backends: Iterable[str], plans: list[FaultPlan], run_dir, late_check_s: float = LATE_CHECK_S,
                 **config) -> tuple[pd.DataFrame, pd.DataFrame]:
    """run_faults on one lab per backend (fault_lab, in `run_dir`/<backend>), one after the other: each lab is
    stopped before the next starts."""
    played = []
    for backend in backends:
        with Lab(run_dir=run_dir / backend, **fault_lab(backend, **config)) as lab:
            played.append(run_faults(lab, plans, late_check_s))
    return concat(played)


# -- soak -----------------------------------------------------------------------------------------------------

def lab_rss_mb(lab: Lab) -> float:
    """Resident memory of every process the lab runs, in MiB."""
    return rss_mb([process.pid for process in lab.processes.values()])


def measure_capacity(lab: Lab, jobs: int = 200) -> dict:
    """What the ledger path sustains end to end: the consumer is stopped, `jobs` are accepted as fast as a
    closed loop can, then the consumer is started and the drain timed (jobs/s from the first delivery to
    the last). The web side's own rate is reported beside; the capacity is the smaller."""
    tag = new_tag("capacity")
    lab.stop_consumer()
    spec = replace(load_spec(lab, "ledger", mode="closed", connections=8, duration_s=3.0, warmup_s=0.0),
                   form={"to": recipient(tag, "ledger")})
    web = run_load(spec).summary
    lab.start_consumer()
    before = lab.mail.emails_received()
    accepted = ledger_jobs(lab, tag)["jobs"]
    lab.mail.wait_for_emails(before + accepted, timeout=300)
    settle_and_read(lab, tag, [], 60.0, quiet_s=0.5)
    got = lab.mail.deliveries().iloc[before:]
    span = float(got["accepted_at"].max() - got["accepted_at"].min()) if len(got) > 1 else float("nan")
    drain_rate = (len(got) - 1) / span if span and span > 0 else float("nan")
    return {"web_rate": web["throughput"], "drain_rate": drain_rate, "capacity": min(web["throughput"], drain_rate),
            "capacity_jobs": accepted}


def soak(lab: Lab, rate: float, duration_s: float, warmup_s: float = 10.0, late_check_s: float = LATE_CHECK_S) -> dict:
    """The ledger path at `rate` for `duration_s`: errors, 5xx, memory growth of every lab process (measured
    from the end of the warm-up), and the episode's own requested/delivered/lost/duplicated."""
    tag = new_tag("soak")
    spec = replace(load_spec(lab, "ledger", mode="open", rate=rate, arrival="poisson", connections=128,
                             duration_s=duration_s, warmup_s=warmup_s, timeout_s=30.0),
                   form={"to": recipient(tag, "ledger")})
    rss: dict[str, float] = {}

    def sample_rss():
        time.sleep(GENERATOR_START_S + warmup_s)
        rss["start"] = lab_rss_mb(lab)

    sampler = threading.Thread(target=sample_rss)
    sampler.start()
    result = run_load(spec)
    sampler.join()
    rss["end"] = lab_rss_mb(lab)
    settle, at_settle = settle_and_read(lab, tag, ["ledger"], 120.0)
    time.sleep(late_check_s)
    records = result.records
    counts = account(records, received_by_request(lab, tag, "ledger"), at_settle["ledger"])
    s = result.summary
    return {"soak_s": duration_s, "soak_rate": rate, "soak_requests": int(len(records)),
            "soak_5xx": int((records["status"] >= 500).sum()), "soak_errors": int(records["error"].notna().sum()),
            "soak_rss_start_mb": round(rss["start"], 1), "soak_rss_end_mb": round(rss["end"], 1),
            "soak_rss_growth_mb": round(rss["end"] - rss["start"], 1),
            "soak_latency_p50_ms": s["latency_p50_ms"], "soak_latency_p99_ms": s["latency_p99_ms"],
            "soak_lost": counts["lost"], "soak_duplicated": counts["duplicated"],
            "soak_late_copies": counts["late_copies"], "soak_settled": settle["settled"]}


# -- the figures notebook 05 records and `bench faults` prints, and the claims they must bear -----------------

def _sum(rows: pd.DataFrame, column: str) -> int:
    return int(rows[column].sum()) if column in rows else 0


def design_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per backend, design and fault: requested, lost, duplicated, late copies, permanent (refused for good), and for
    the ledger permanent_failed and stuck: summed per message counts of run_faults' table (replays included)."""
    columns = [c for c in ("requested", "lost", "duplicated", "late_copies", "permanent", "permanent_failed", "stuck")
               if c in table]
    order = {d: k for k, d in enumerate(DESIGNS)}
    summed = table.groupby(["backend", "design", "fault"], sort=False)[columns].sum(min_count=1).reset_index()
    return summed.sort_values(["backend", "design"], key=lambda c: c.map(order) if c.name == "design" else c,
                              kind="stable").reset_index(drop=True)


def key_figures(table: pd.DataFrame, timeline: pd.DataFrame, overload: pd.DataFrame | None = None,
                capacity: dict | None = None, soak_figures: dict | None = None) -> dict:
    """From run_faults' (or run_backends') table and timeline, and (when measured) run_overload's table, the
    capacity and the soak: per backend <b> and design <d>, `<b>_<d>_requested / _lost / _duplicated / _late /
    _permanent` (None where the backend's queue does not offer the design), the ledger's own account, and every
    number verdict() compares."""
    ledger = table[table["design"] == "ledger"]
    plain = table[table["design"] == "plain"]
    retries = table[table["design"] == "retries"]
    smtp = table["fault"].isin(TRANSIENT_SMTP_FAULTS)
    killed = plain[plain["fault"] == "consumer_kill"]
    episodes = table.drop_duplicates("tag")
    backends = list(dict.fromkeys(table["backend"]))
    figures = {
        "backends": backends,
        "designs": list(DESIGNS),
        "faults": list(dict.fromkeys(table["fault"])),
        "faults_injected": int(timeline["fault"].count()),
        "kills": int((timeline["fault"] == "consumer_kill").sum()),
        "episodes": len(episodes),
        "episodes_settled": _sum(episodes, "settled"),
        "episode_replays": int((episodes["replays"] > 0).sum()),
        "episodes_missing_a_load": len(episodes) - _sum(episodes, "met_every_load"),
        "settle_s_max": round(float(episodes["settle_s"].max()), 1),
        "emails_requested": _sum(table, "requested"),
        "late_copies": _sum(table, "late_copies"),
    }
    for b in backends:
        for d in DESIGNS:
            rows = table[(table["backend"] == b) & (table["design"] == d)]
            for name, column in (("requested", "requested"), ("lost", "lost"), ("duplicated", "duplicated"),
                                 ("late", "late_copies"), ("permanent", "permanent")):
                figures[f"{b}_{d}_{name}"] = _sum(rows, column) if len(rows) else None
    by_fault = design_table(table)
    figures["by_fault"] = {
        f"{r.backend}/{r.design}/{r.fault}": {"requested": int(r.requested), "lost": int(r.lost),
                                              "duplicated": int(r.duplicated)} for r in by_fault.itertuples()}
    figures.update({
        # the ledger, every backend
        "lost": _sum(ledger, "lost"),
        "duplicated": _sum(ledger, "duplicated"),
        "requested": _sum(ledger, "requested"),
        "delivered_unacknowledged": _sum(ledger, "delivered_unacknowledged"),
        "uncertain_attempts": _sum(ledger, "ledger_uncertain_attempts"),
        "confirmed_by_provider": _sum(ledger, "ledger_confirmed_by_provider"),
        "ledger_reenqueued": _sum(ledger, "ledger_reenqueued"),
        "ledger_missed": _sum(ledger, "ledger_missed"),
        "ledger_disagreements": _sum(ledger, "ledger_disagreements"),
        "ledger_stuck": _sum(ledger, "stuck"),
        "permanent_requested": _sum(ledger, "permanent"),
        "permanent_failed": _sum(ledger, "permanent_failed"),
        "stall_requested": _sum(ledger[ledger["fault"] == "smtp_stall"], "requested"),
        "stall_duplicates": _sum(ledger[ledger["fault"] == "smtp_stall"], "duplicated"),
        "stall_duplicates_any_design": _sum(table[table["fault"] == "smtp_stall"], "duplicated"),
        # jobs accepted in a slow transaction, and the times the reconciler had to enqueue one again (its task ran
        # before the commit and found no job)
        "slow_commit_requested": _sum(ledger[ledger["fault"] == SLOW_COMMIT], "requested"),
        "slow_commit_reenqueued": _sum(ledger[ledger["fault"] == SLOW_COMMIT], "ledger_reenqueued"),
        # attempts beyond each job's first, under the transient SMTP faults: the ledger's retries
        "smtp_retries": (_sum(ledger[ledger["fault"].isin(TRANSIENT_SMTP_FAULTS)], "ledger_attempts")
                         - _sum(ledger[ledger["fault"].isin(TRANSIENT_SMTP_FAULTS)], "ledger_jobs")),
        "plain_smtp_lost": _sum(plain[smtp.loc[plain.index]], "lost"),
        # per backend that offers the retries design: (plain, retries) lost under the transient SMTP faults
        "retries_vs_plain_smtp_lost": {
            b: [_sum(plain[smtp.loc[plain.index] & (plain["backend"] == b)], "lost"),
                _sum(retries[smtp.loc[retries.index] & (retries["backend"] == b)], "lost")]
            for b in backends if (retries["backend"] == b).any()},
        "kill_lost_plain": _sum(killed, "lost"),
        # a killed worker holds one task: no kill can take more than the workers held
        "kill_loss_bound": int((killed["injections"] * killed["consumer_workers"]).sum()),
        "web_restart_failed_requests": int((table.loc[table["fault"] == "web_restart", "client_errors"]
                                            + table.loc[table["fault"] == "web_restart", "server_5xx"]).sum()),
        "web_restart_lost": _sum(table[table["fault"] == "web_restart"], "lost"),
    })
    if overload is not None:
        bounded, unbounded = (overload[overload["max_backlog"] > 0].iloc[0],
                              overload[overload["max_backlog"] == 0].iloc[0])
        figures.update({
            "overload": overload.to_dict("records"),
            "overload_bound": int(bounded["max_backlog"]),
            "overload_web_workers": int(bounded["web_workers"]),
            "overload_max_depth_bounded": int(bounded["max_depth"]),
            "overload_max_depth_unbounded": int(unbounded["max_depth"]),
            "overload_shed_503": int(bounded["refused_503"]),
            "overload_retry_after_s": int(bounded["retry_after_s"]) if pd.notna(bounded["retry_after_s"]) else None,
            "overload_requested": _sum(overload, "requested"),
            "overload_lost": _sum(overload, "lost"),
            "overload_duplicated": _sum(overload, "duplicated"),
            "overload_late_copies": _sum(overload, "late_copies"),
            "overload_settled": int(overload["settled"].sum()),
            "overload_runs": len(overload),
            "overload_server_5xx": _sum(overload, "server_5xx"),
            "overload_drain_s_bounded": round(float(bounded["drain_after_load_s"]), 2),
            "overload_drain_s_unbounded": round(float(unbounded["drain_after_load_s"]), 2),
        })
    if capacity is not None:
        figures.update({"capacity_per_s": round(capacity["capacity"], 1),
                        "capacity_web_per_s": round(capacity["web_rate"], 1),
                        "capacity_drain_per_s": round(capacity["drain_rate"], 1)})
    figures.update(soak_figures or {})
    return figures


CLAIMS = {
    "loads_met": "every fault met every design's load",
    "settled": "every episode settled before its timeout",
    "no_late_copy": "no copy arrived after an episode settled",
    "ledger_lost": "ledger: lost 0 under every fault, on every backend",
    "ledger_duplicated": "ledger: duplicated 0 under every fault on every backend, unacknowledged requests included",
    "ledger_stall": "ledger: a provider stalling each command at 40% of the lease got no second copy (full mode)",
    "ledger_delivered": "ledger: every accepted job delivered in the ledger, message by message",
    "ledger_agrees": "ledger: the ledger agrees with the SMTP record on every message",
    "ledger_permanent": "ledger: every email to an unknown user (550) ended failed, and no job was left open",
    "ledger_retried": "ledger: the transient SMTP faults were retried",
    "ledger_on_commit": "ledger: a job accepted in a slow transaction was sent by its own task once committed, never "
                        "left to the reconciler",
    "ledger_confirmed": "ledger: kills landed between the provider's 250 and the commit, and the provider check "
                        "caught them (full mode)",
    "plain_smtp_lost": "plain: the transient SMTP faults lost accepted emails",
    "retries_recover": "retries: the queue's own retries lost fewer emails to the transient SMTP faults than plain, on "
                       "every backend that offers them",
    "plain_kills_lost": "plain: the consumer kills lost no more than the tasks the workers held",
    "web_restart": "web restart: requests failed, yet no design lost an accepted email",
    "bounded_depth": "bounded: queue depth stayed within the bound",
    "bounded_shed": "bounded: the overflow was answered 503 with Retry-After",
    "unbounded_grew": "unbounded: the queue grew past the bound",
    "unbounded_drain": "unbounded: the backlog took longer to drain after the load",
    "overload_settled": "both overload runs settled, nothing arriving after",
    "overload_lost": "no accepted email lost, bounded or not",
    "overload_5xx": "no server error but the 503s",
}


def verdict(figures: dict, quick: bool = False) -> dict[str, bool | None]:
    """The faults' claims, from key_figures(): the ledger's own account is held against the SMTP record message by
    message, and no account counts unless its episode settled and nothing came after. The kills' plain losses are
    bounded, not required: the kill episode's provider records a message before its delay, so a plain task killed
    mid-send is delivered and a plain loss needs a kill between a task's dequeue and its send (rare). That a kill landed
    between the provider's 250 and the commit (confirmed_by_provider) needs the full run's kills too, and the stalling
    provider plays in full mode only (its exchanges take seconds to end). The overload:
    the bound holds (give or take one request per web worker racing between count and enqueue), the overflow was
    shed with 503 + Retry-After, the unbounded backlog grew past the bound and took longer to drain, and nothing
    accepted was lost either way, in runs that settled."""
    f, killed = figures, figures["kill_lost_plain"]
    slack = f["overload_bound"] + f["overload_web_workers"]
    compared = f["retries_vs_plain_smtp_lost"].values()
    return runs.claims(CLAIMS, {
        "loads_met": f["episodes_missing_a_load"] == 0,
        "settled": f["episodes_settled"] == f["episodes"],
        "no_late_copy": f["late_copies"] == 0,
        "ledger_lost": f["lost"] == 0,
        "ledger_duplicated": f["duplicated"] == 0,
        "ledger_stall": f["stall_requested"] > 0 and f["stall_duplicates"] == 0,
        "ledger_delivered": f["ledger_missed"] == 0,
        "ledger_agrees": f["ledger_disagreements"] == 0,
        "ledger_permanent": 0 < f["permanent_requested"] == f["permanent_failed"] and f["ledger_stuck"] == 0,
        "ledger_retried": f["smtp_retries"] > 0,
        "ledger_on_commit": f["slow_commit_requested"] > 0 and f["slow_commit_reenqueued"] == 0,
        "ledger_confirmed": f["confirmed_by_provider"] > 0,
        # A refused send is a failed task, never retried: the problem shows whatever the kill's timing.
        "plain_smtp_lost": f["plain_smtp_lost"] > 0,
        "retries_recover": bool(compared) and all(retried < plain for plain, retried in compared),
        "plain_kills_lost": killed <= f["kill_loss_bound"],
        "web_restart": f["web_restart_failed_requests"] > 0 and f["web_restart_lost"] == 0,
        "bounded_depth": f["overload_max_depth_bounded"] <= slack,
        "bounded_shed": f["overload_shed_503"] > 0 and (f["overload_retry_after_s"] or 0) >= 1,
        "unbounded_grew": f["overload_max_depth_unbounded"] > slack,
        "unbounded_drain": f["overload_drain_s_unbounded"] > f["overload_drain_s_bounded"],
        "overload_settled": f["overload_settled"] == f["overload_runs"] and f["overload_late_copies"] == 0,
        "overload_lost": f["overload_lost"] == 0,
        "overload_5xx": f["overload_server_5xx"] == 0,
    }, quick)


FAULT_LAB = dict(ledger=True, smtp_delay_s=0.1, smtp_timeout_s=1.0, ledger_deadline_s=2.0, ledger_retry_delay_s=0.25,
                 reconcile_every_s=0.5, web_workers=4, consumer_workers=4, huey_log_level="WARNING")


def fault_plans(rate: float = 20.0, duration_s: float = 6.0, fault_at_s: float = 1.5, fault_for_s: float = 2.0,
                kills: int = 3, kill_rate: float = 6.0, kill_smtp_delay_s: float = 0.25, stall_for_s: float = 5.0,
                settle_timeout_s: float = 90.0, hold_ms: int = 200, slow_commit_rate: float = 2.0,
                faults: Iterable[str] | None = None) -> list[FaultPlan]:
    """The episodes of notebook 05 and `bench faults`: the consumer killed `kills` times under a slower provider
    that records each message before its delay (each worker is mid-send most of the time, and a kill often lands
    between the 250 and the commit), then each SMTP fault, a web server crash, and the ledger's requests holding
    their transaction open `hold_ms` at `slow_commit_rate` (SQLite's write lock is held that long: a low rate). The
    stall lasts `stall_for_s`: longer than a whole exchange of four stalled commands, so an exchange can outlast the
    ledger's lease."""
    # the kills' load lasts as long as the lab's consumer needs to restart after each (load_s)
    plans = [FaultPlan("consumer_kill", rate=kill_rate, duration_s=duration_s, fault_at_s=fault_at_s,
                       fault_for_s=min(fault_for_s, 1.0), kills=kills,
                       smtp_delay_s=kill_smtp_delay_s, settle_timeout_s=settle_timeout_s, record_first=True)]
    plans += [FaultPlan(name, rate=rate, duration_s=duration_s, fault_at_s=fault_at_s,
                        fault_for_s=stall_for_s if name == "smtp_stall" else fault_for_s,
                        settle_timeout_s=settle_timeout_s)
              for name in ("smtp_4xx", "smtp_drop", "smtp_stall", "smtp_550", "web_restart")]
    plans.append(FaultPlan(SLOW_COMMIT, rate=slow_commit_rate, duration_s=duration_s, fault_at_s=fault_at_s,
                           settle_timeout_s=settle_timeout_s, hold_ms=hold_ms, designs=("ledger",)))
    return [plan for plan in plans if faults is None or plan.fault in faults]


@benchmark("faults")
def faults_bench(run_dir, soak_s: float | None = None, kills: int = 5, rate: float = 20.0, kill_rate: float = 6.0,
                 backends: str = ",".join(BACKENDS)) -> dict:
    """Every fault under load on every backend of `backends` (comma-separated), the four designs side by side
    (`kills` consumer SIGKILLs per backend, under `kill_rate` requests/s: lower it for a shorter soak of many kills),
    then a soak of the ledger path on the first backend at 80% of its measured capacity. `soak_s` defaults to
    LAB_SOAK_S or 180 s (0: no soak)."""
    soak_s = float(os.environ.get("LAB_SOAK_S", 180) if soak_s is None else soak_s)
    chosen = [b for b in str(backends).split(",") if b]
    table, timeline = run_backends(chosen, fault_plans(rate=rate, kills=kills, kill_rate=kill_rate), run_dir)
    runs.save_table(run_dir, "faults", table)
    runs.save_table(run_dir, "fault-timeline", timeline)
    capacity = soaked = None
    if soak_s > 0:
        with Lab(run_dir=run_dir / "soak", **fault_lab(chosen[0])) as lab:
            capacity = measure_capacity(lab)
            soaked = soak(lab, rate=0.8 * capacity["capacity"], duration_s=soak_s)
    figures = {**key_figures(table, timeline, capacity=capacity, soak_figures=soaked),
               "smtp_delay_s": FAULT_LAB["smtp_delay_s"], "consumer_workers": FAULT_LAB["consumer_workers"]}
    figures["claims_failed"] = [claim for claim, held in verdict(without_overload(figures)).items()
                                if held is False and not claim.startswith(OVERLOAD_CLAIMS)]
    return figures


OVERLOAD_CLAIMS = ("bounded", "unbounded", "both overload", "no accepted email lost, bounded", "no server error")


def without_overload(figures: dict) -> dict:
    """The figures with neutral overload figures (the benchmark runs no overload; its claims are left out)."""
    neutral = {"overload_bound": 1, "overload_web_workers": 0, "overload_max_depth_bounded": 0,
               "overload_max_depth_unbounded": 2, "overload_shed_503": 1, "overload_retry_after_s": 1,
               "overload_drain_s_unbounded": 1, "overload_drain_s_bounded": 0, "overload_settled": 2,
               "overload_runs": 2, "overload_late_copies": 0, "overload_lost": 0, "overload_server_5xx": 0}
    return {**neutral, **figures}
