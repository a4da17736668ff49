"""Notebook 07, which queue: every queue backend of helpers.stack.queues on one harness, one row each
(`python -m helpers bench queues`). The labs run side by side (helpers.experiments.scale_out.side_by_side), alike
but for `queue_backend`, one worker each; nothing here branches on a backend's name, only on what `lab.queue` says
(its workers, its tuning knob, its declared delivery, whether its tasks share the request's transaction).

    view cost        POST /email/deferred/ against POST /email/validate/ (the same form parsed and validated,
                     nothing enqueued), interleaved through the timing client, cross-checked with wrk at one
                     connection; the immediate backend's "deferred" view sends the email inside the request
    pickup           one email through /email/deferred/ after each idle period, until the SMTP server records it;
                     the idle workers' CPU over the same idle periods; default settings, then the tuning knob
    end to end       open-loop Poisson load (helpers.instruments.loadgen) on /email/deferred/ at a fixed rate, each
                     lab in turn: response time, and completion = the SMTP server's 250 (accepted_at) - the request's
                     due time (default settings, as the pickups)
    drain            no-op tasks enqueued with the workers stopped (queue_semantics.enqueue_noop), then one worker
    kills            open-loop load with a slow SMTP server, every lab's workers SIGKILLed mid-send and restarted,
                     then settled: lost / duplicated (helpers.experiments.faults.account) / stuck (left running
                     or unacknowledged by the queue's own account)
    transactions     queue_semantics.transaction_outcomes
    memory           RSS of the queue's servers, one worker, the web server
"""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from helpers import runs
from helpers.experiments import faults
from helpers.experiments.scale_out import _interleaved, side_by_side, turn_order
from helpers.instruments import cpu, queue_semantics, wrk
from helpers.instruments.client import RequestSpec, time_requests
from helpers.instruments.endpoints import load_spec
from helpers.instruments.loadgen import run_load
from helpers.instruments.queue_probe import QueueDepthSampler, drain_rate
from helpers.runs.bench import benchmark
from helpers.stack import Lab
from helpers.stack.processes import LOOPBACK
from helpers.stack.queues import names
from helpers.stack.smtp_sink import set_fault

# Quick mode's subset (the notebook in under a minute): a polled queue whose task is a row of the site's database, in
# the request's transaction, with a tuning knob (django-tasks-db, SQLite), and a blocking pop on a server, outside it
# (Huey, Redis: it starts and stops in half Celery's time). Every kind of backend the verdict compares is among them.
QUICK_BACKENDS = ("djtasks_db_sqlite", "huey_redis")
# One web server of 2 sync workers and one worker per backend; an SMTP server that answers at once (the pickup
# and drain measure the queue, not the provider); Huey's two log lines per task off.
LAB = {"web_workers": 2, "consumer_workers": 1, "smtp_delay_s": 0.0, "huey_log_level": "WARNING"}
VALIDATE, DEFERRED = "/email/validate/", "/email/deferred/"
VIEWS = {"validate": VALIDATE, "deferred": DEFERRED}  # label -> path


def chosen_backends(quick: bool) -> list[str]:
    return list(QUICK_BACKENDS) if quick else names()


def has_workers(lab: Lab) -> bool:
    """False for a backend whose tasks run inside the request (no worker process to pick up, drain or kill)."""
    return bool(lab.consumer_names())


def worker_pids(lab: Lab) -> list[int]:
    return [lab.processes[name].pid for name in lab.consumer_names()]


# -- 1. the view's cost ------------------------------------------------------------------------------------------

@dataclass
class ViewCost:
    timings: pd.DataFrame  # one row per request (warm-ups flagged), with backend and turn
    wrk: pd.DataFrame  # one row per wrk run: backend, endpoint, turn, p50_ms, rps, errors
    deliveries: pd.DataFrame  # per backend: deferred requests sent, answered 202, emails that arrived


def view_specs(tag: str, requests: int, warmup: int) -> list[RequestSpec]:
    """The validating and the deferred view, the same form, each request its own recipient."""
    return [RequestSpec(label, path, requests, "POST", {"to": faults.recipient(tag, label)}, warmup=warmup)
            for label, path in VIEWS.items()]


def view_cost(labs: dict[str, Lab], requests: int, turns: int = 2, warmup: int = 5, wrk_s: float = 1.0,
              timeout_s: float = 60.0) -> ViewCost:
    """`requests` per endpoint and backend over `turns` (backends A B, then B A), the first turn followed by wrk at
    one connection on both endpoints for `wrk_s` each (thousands of emails per second of it for the worker to send
    afterwards: once is enough); then how many of the emails the
    202s promised reached each lab's SMTP server (a shortfall is a result)."""
    tag = faults.new_tag("view")
    per_turn = max(1, requests // turns)
    frames, wrk_rows = [], []
    for turn, backend, lab in _interleaved(labs, turns):
        timings = time_requests(LOOPBACK, lab.web_port, view_specs(tag, per_turn, warmup), include_warmup=True)
        frames.append(timings.assign(backend=backend, turn=turn))
        if wrk_s >= 1 and turn == 0:  # wrk counts whole seconds; every deferred request of its is an email to send
            for label in turn_order(VIEWS, turn):
                measured = wrk.run(lab.http.url(VIEWS[label]), connections=1, duration_s=wrk_s, threads=1,
                                   method="POST",
                                   body=f"to=wrk-{backend}%40example.test")
                wrk_rows.append({"backend": backend, "endpoint": label, "turn": turn, **measured})
    timings = pd.concat(frames, ignore_index=True)
    rows = []
    for backend, lab in labs.items():
        own = timings[(timings["backend"] == backend) & (timings["label"] == "deferred")]
        accepted = int((own["status"] == 202).sum())
        arrived = _wait_for_copies(lab, f"{tag}-deferred-", accepted, timeout_s)
        rows.append({"backend": backend, "requested": len(own), "accepted": accepted, "emails_arrived": arrived})
    for lab in labs.values():  # wrk's emails too, before anything else is timed
        lab.wait_until_drained(timeout=600)
    return ViewCost(timings, pd.DataFrame(wrk_rows), pd.DataFrame(rows).set_index("backend"))


def _wait_for_copies(lab: Lab, prefix: str, expected: int, timeout_s: float) -> int:
    """Copies the SMTP server accepted for recipients `<prefix><n>@...`, waiting up to `timeout_s` for `expected`."""
    deadline = time.monotonic() + timeout_s
    while True:
        arrived = int(lab.mail.copies_by_number(prefix).sum())
        if arrived >= expected or time.monotonic() > deadline:
            return arrived
        time.sleep(0.1)


def view_summary(view: ViewCost) -> pd.DataFrame:
    """Per backend: p50 of each view through the client (answered 200 / 202, warm-ups left out) and wrk (median
    over turns), the enqueue's cost (deferred - validate) and the ratio deferred / validate."""
    ok = {"validate": 200, "deferred": 202}
    measured = view.timings[~view.timings["warmup"]]
    measured = measured[measured["status"] == measured["label"].map(ok)]
    client = measured.groupby(["backend", "label"])["total_ms"].agg(["median", "size"]).unstack("label")
    rows = []
    for backend in view.deliveries.index:
        row = {"backend": backend}
        for label in ok:
            row[f"{label}_p50_ms"] = client.loc[backend, ("median", label)] if backend in client.index else np.nan
            row[f"{label}_n"] = int(client.loc[backend, ("size", label)]) if backend in client.index else 0
        if len(view.wrk):
            own = view.wrk[view.wrk["backend"] == backend].groupby("endpoint")["p50_ms"].median()
            row.update({f"wrk_{label}_p50_ms": own.get(label, np.nan) for label in ok})
        rows.append(row)
    frame = pd.DataFrame(rows).set_index("backend")
    frame["enqueue_cost_us"] = (frame["deferred_p50_ms"] - frame["validate_p50_ms"]) * 1e3
    frame["view_ratio"] = frame["deferred_p50_ms"] / frame["validate_p50_ms"]
    if "wrk_deferred_p50_ms" in frame:
        frame["wrk_enqueue_cost_us"] = (frame["wrk_deferred_p50_ms"] - frame["wrk_validate_p50_ms"]) * 1e3
        frame["wrk_view_ratio"] = frame["wrk_deferred_p50_ms"] / frame["wrk_validate_p50_ms"]
    return frame


# -- 2. pickup after idle periods, and the idle workers' CPU ----------------------------------------------------

def pickups(labs: dict[str, Lab], idle_s: list[float], repeats: int, setting: str, seed: int = 3) -> pd.DataFrame:
    """One email through /email/deferred/ to every lab after each idle period (in a random order, the same for
    every setting), the labs posted in turn (A B, then B A); pickup_ms = the SMTP server's received_at - the
    request's start. A first email ends the start-up activity. The idle workers' CPU is read over every idle
    period. One row per email, with its setting."""
    tag = faults.new_tag("pickup")
    order = np.random.default_rng(seed).permutation(np.repeat(np.asarray(idle_s, dtype=float), repeats))
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
    sent, to = [], faults.recipient(tag, "pickup", k)
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


def pickup_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per backend and settings: n, p50, p99, max pickup (ms), the idle workers' CPU (% of one core)."""
    return frame.groupby(["backend", "settings"], sort=False).agg(
        n=("pickup_ms", "count"), p50_ms=("pickup_ms", "median"), p99_ms=("pickup_ms", lambda v: v.quantile(0.99)),
        max_ms=("pickup_ms", "max"), idle_cpu_pct=("idle_cpu_pct", "first"))


def tunable(labs: dict[str, Lab]) -> dict[str, Lab]:
    """The labs whose backend has a tuning knob (drains() leaves their workers tuned)."""
    return {b: lab for b, lab in labs.items() if lab.queue.tuned_worker_config and has_workers(lab)}


# -- 2b. end to end under open-loop load ---------------------------------------------------------------------------

@dataclass
class E2EPlan:
    rate: float = 20.0  # deferred requests/s to one lab at a time (open loop, Poisson)
    duration_s: float = 5.0  # measured part
    warmup_s: float = 0.5  # sent first, left out of every figure
    timeout_s: float = 30.0  # a request's, and the wait for the emails its 202s promised


def end_to_end(labs: dict[str, Lab], plan: E2EPlan) -> pd.DataFrame:
    """Each lab in turn alone under the open-loop generator on /email/deferred/ (Poisson arrivals at `plan.rate`,
    each request its own recipient); once the emails its 202s promised arrived (or `timeout_s`), every request is
    matched with its first copy in the SMTP record: completion_ms = accepted_at (when the server answered 250; equal
    to received_at here, the SMTP delay being 0) - the request's due time, NaN for an email that never came. One row
    per request, warm-ups flagged: the generator's records (latency_ms counts from the due time) with backend,
    completion_ms."""
    tag = faults.new_tag("e2e")
    frames = []
    for k, (backend, lab) in enumerate(labs.items()):
        spec = replace(load_spec(lab, "deferred", mode="open", rate=plan.rate, arrival="poisson", connections=16,
                                 duration_s=plan.duration_s, warmup_s=plan.warmup_s, timeout_s=plan.timeout_s,
                                 processes=1, seed=k + 1),
                       form={"to": faults.recipient(tag, backend)})
        result = run_load(spec)
        records = result.records
        prefix = f"{tag}-{backend}-"
        _wait_for_copies(lab, prefix, int((records["status"] == 202).sum()), plan.timeout_s)
        due_epoch = result.start_epoch + records["due_ms"] / 1e3
        delivered_at = records["i"].map(first_accepted_at(lab, prefix))
        frames.append(records.assign(backend=backend, completion_ms=(delivered_at - due_epoch) * 1e3))
    return pd.concat(frames, ignore_index=True)


def first_accepted_at(lab: Lab, prefix: str) -> pd.Series:
    """Per request number n of the recipients `<prefix><n>@example.test`: when the SMTP server accepted its first
    copy (epoch s, the 250)."""
    found = lab.mail.deliveries()
    numbers = found["rcpt_tos"].map(lambda r: r[0] if r else "").str.extract(rf"^{re.escape(prefix)}(\d+)@")[0]
    return found.assign(i=numbers).dropna(subset=["i"]).astype({"i": int}).groupby("i")["accepted_at"].min()


def end_to_end_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per backend, the measured requests (warm-ups left out): sent, accepted (202), delivered (an SMTP copy),
    response p50/p99 (due to answer, the 202s) and completion p50/p99 (due to the SMTP server's 250), ms."""
    measured = frame[~frame["warmup"]]
    rows = []
    for backend, own in measured.groupby("backend", sort=False):
        ok = own[own["status"] == 202]
        rows.append({"backend": backend, "sent": len(own), "accepted": len(ok),
                     "delivered": int(ok["completion_ms"].notna().sum()),
                     "response_p50_ms": ok["latency_ms"].median(), "response_p99_ms": ok["latency_ms"].quantile(0.99),
                     "completion_p50_ms": ok["completion_ms"].median(),
                     "completion_p99_ms": ok["completion_ms"].quantile(0.99)})
    return pd.DataFrame(rows).set_index("backend")


# -- 3. drain ------------------------------------------------------------------------------------------------------

def drains(labs: dict[str, Lab], count: int, tuned: bool = True) -> pd.DataFrame:
    """Per lab in turn: its workers stopped, `count` no-op tasks enqueued through its API
    (queue_semantics.enqueue_noop, from a process of its own), the workers started again (`tuned`: with the
    backend's tuning knob, which they keep; a worker never idles on a full queue, so it changes nothing here and
    saves a restart); tasks/s read off the queue depth sampled every 5 ms (90 % to 10 % of the peak). NaN where
    there is no worker."""
    from concurrent.futures import ThreadPoolExecutor

    def fill(lab: Lab) -> str | None:
        """Stop the lab's workers and fill its queue: every lab at once (no process is started here)."""
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
            with QueueDepthSampler(lab.queue, 0.005) as sampler:
                lab.start_consumer(**(lab.queue.tuned_worker_config if tuned else {}))
                lab.wait_until_drained(timeout=300)
                time.sleep(0.05)
            depth = sampler.frame()
            row["queued_at_start"] = int(depth["depth"].max()) if len(depth) else 0
            row["drain_per_s"] = drain_rate(depth) if row["queued_at_start"] > 0 else np.nan
        rows.append(row)
    return pd.DataFrame(rows).set_index("backend")


# -- 4. what a killed worker loses -------------------------------------------------------------------------------

def stuck(lab: Lab) -> int:
    """Tasks the queue still holds as taken (running, unacknowledged) by the queue's own account; 0 where it keeps
    no such account (the task then lives only in the dead worker's memory)."""
    counts = lab.queue.counts()
    return int(sum(v for k, v in counts.items() if k not in ("pending", "scheduled") and v is not None))


@dataclass
class KillPlan:
    kills: int = 5  # SIGKILLs of every lab's workers
    rate: float = 3.0  # deferred requests/s to each lab (open loop, Poisson)
    smtp_delay_s: float = 0.25  # each send takes this long: a worker is mid-send most of the time
    first_kill_s: float = 1.5  # after the loads are seen running
    down_s: float = 0.5  # how long the workers stay dead
    gap_s: float = 1.5  # after a round of restarts, before the next kill
    restart_s: float = 2.5  # a worker's restart, for the load's length (a round restarts every lab in turn)
    settle_timeout_s: float = 90.0
    quiet_s: float = 1.0


def kill_workers_under_load(labs: dict[str, Lab], plan: KillPlan, late_check_s: float = faults.LATE_CHECK_S
                            ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Open-loop load on every lab's deferred view at once (each request its own recipient); `plan.kills` times,
    every lab's workers SIGKILLed at the same moment, restarted `down_s` later (one lab after another, from this
    thread: a process dies with the thread that started it); then every lab settled (settle()) and its account
    taken from its SMTP record (faults.account). Returns (one row per backend, the kills' timeline)."""
    from concurrent.futures import ThreadPoolExecutor

    tag = faults.new_tag("kill")
    with_workers = {b: lab for b, lab in labs.items() if has_workers(lab)}
    round_s = plan.down_s + plan.restart_s * len(with_workers) + plan.gap_s
    duration = plan.first_kill_s + (plan.kills - 1) * round_s + 1.0
    for lab in labs.values():
        set_fault(lab.smtp_control, "ok", delay_s=plan.smtp_delay_s)
    specs = {b: replace(load_spec(lab, "deferred", mode="open", rate=plan.rate, arrival="poisson", connections=16,
                                  duration_s=duration, warmup_s=0.0, timeout_s=30.0, processes=1, seed=k + 1),
                        form={"to": faults.recipient(tag, b)})
             for k, (b, lab) in enumerate(labs.items())}
    timeline = []
    before = {b: lab.mail.emails_received() for b, lab in labs.items()}
    with ThreadPoolExecutor(len(specs)) as pool:
        loads = {b: pool.submit(run_load, spec) for b, spec in specs.items()}
        started = _loads_running(labs, before, loads.values())
        next_kill = started + plan.first_kill_s
        for k in range(plan.kills):
            time.sleep(max(0.0, next_kill - time.monotonic()))
            running = not any(load.done() for load in loads.values())
            at = time.monotonic() - started
            held = {b: stuck(lab) for b, lab in with_workers.items()}
            killed = {b: lab.queue.kill_workers() for b, lab in with_workers.items()}
            time.sleep(plan.down_s)
            for b, lab in with_workers.items():
                lab.start_consumer()
                timeline.append({"backend": b, "kill": k, "at_s": at, "loads_running": running,
                                 "processes_killed": killed[b], "held_before": held[b]})
            next_kill = time.monotonic() + plan.gap_s
        records = {b: load.result().records for b, load in loads.items()}
    settled = settle(labs, plan.settle_timeout_s, plan.quiet_s)
    at_settle = {b: faults.received_by_request(lab, tag, b) for b, lab in labs.items()}
    time.sleep(late_check_s)
    rows = []
    for b, lab in labs.items():
        set_fault(lab.smtp_control, "ok", delay_s=lab.config.smtp_delay_s)
        counts = faults.account(records[b], faults.received_by_request(lab, tag, b), at_settle[b])
        rows.append({"backend": b, "delivery": lab.queue.delivery, "kills": sum(r["backend"] == b for r in timeline),
                     **settled[b], "stuck": stuck(lab), **counts})
    return pd.DataFrame(rows).set_index("backend"), pd.DataFrame(timeline)


def _loads_running(labs: dict[str, Lab], before: dict[str, int], loads, timeout_s: float = 30.0) -> float:
    """When every lab's load runs: each lab's SMTP server has accepted an email since `before` (each generator
    process picks its own start, later on a busy machine); falls back to now when a load ends or time runs out."""
    began = time.monotonic()
    while time.monotonic() - began < timeout_s and not any(load.done() for load in loads):
        if all(lab.mail.emails_received() > before[b] for b, lab in labs.items()):
            break
        time.sleep(0.02)
    return time.monotonic()


def settle(labs: dict[str, Lab], timeout_s: float, quiet_s: float = 1.0) -> dict[str, dict]:
    """Until, in every lab, nothing waits (pending, scheduled), the SMTP server has accepted nothing new for
    `quiet_s`, and a queue that hands a dead worker's task back (redelivery_after_s) has done so or had that long
    since now: what is not delivered then, is lost. Per backend: settled (False: timed out), settle_s."""
    began = time.monotonic()
    last = {b: (lab.mail.emails_received(), began) for b, lab in labs.items()}
    done: dict[str, dict] = {}
    while len(done) < len(labs):
        time.sleep(0.2)
        now = time.monotonic()
        for b, lab in labs.items():
            if b in done:
                continue
            count = lab.mail.emails_received()
            if count != last[b][0]:
                last[b] = (count, now)
            counts = lab.queue.counts()
            redelivery = lab.queue.redelivery_after_s
            handed_back = redelivery is None or stuck(lab) == 0 or now - began > redelivery + 5.0
            if (counts["pending"] == 0 and not counts["scheduled"] and handed_back
                    and now - last[b][1] >= quiet_s):
                done[b] = {"settled": True, "settle_s": now - began}
            elif now - began > timeout_s:
                done[b] = {"settled": False, "settle_s": now - began}
    return done


# -- 6. memory -----------------------------------------------------------------------------------------------------

def memory(labs: dict[str, Lab]) -> pd.DataFrame:
    """RSS (MiB) per backend: the queue's own servers, one worker process (with its children: a prefork pool, a
    work horse), the web server (gunicorn and its workers), and what the backend needs running."""
    rows = []
    for b, lab in labs.items():
        servers = [lab.processes[s].pid for s in lab.queue.servers if s in lab.processes]
        workers = worker_pids(lab)[:1]
        rows.append({"backend": b, "servers_mb": cpu.rss_mb(servers), "worker_mb": cpu.rss_mb(workers),
                     "web_mb": cpu.rss_mb([lab.processes["web"].pid]), "servers": len(lab.queue.servers),
                     "worker_processes": len(worker_pids(lab))})
    return pd.DataFrame(rows).set_index("backend")


# -- 5. transactions (queue_semantics.transaction_outcomes) --------------------------------------------------------

OUTCOMES = ("ran_after_rollback", "ran_before_commit", "ran_after_commit", "on_commit_ran_before_commit", "never_ran")


def transactions(labs: dict[str, Lab], trials: int, **options) -> pd.DataFrame:
    """Per backend: queue_semantics.transaction_outcomes's counts over `trials` (`options`: its hold_ms, settle_s),
    every lab at once (requests and reads only, no process started), beside what the backend declares
    (enqueue_in_transaction)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(labs)) as pool:
        found = dict(zip(labs, pool.map(lambda lab: queue_semantics.transaction_outcomes(lab, trials, **options),
                                        labs.values()), strict=True))
    return pd.DataFrame([{"backend": b, "trials": trials, "enqueue_in_transaction": lab.queue.enqueue_in_transaction,
                          **{k: found[b][k] for k in OUTCOMES}}
                         for b, lab in labs.items()]).set_index("backend")


def stop_all(labs: dict[str, Lab]) -> None:
    """Stop every lab at once (stopping only signals and waits, from any thread); side_by_side's own stop then
    finds nothing left to stop."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(labs)) as pool:
        list(pool.map(Lab.stop, labs.values()))


# -- the matrix, the figures, the claims ---------------------------------------------------------------------------

def matrix(labs_info: pd.DataFrame, view: pd.DataFrame, pickup: pd.DataFrame, e2e: pd.DataFrame, drain: pd.DataFrame,
           kills: pd.DataFrame, tx: pd.DataFrame, mem: pd.DataFrame) -> pd.DataFrame:
    """One row per backend: what it is (describe()), and every measured column the figures are taken from."""
    default = pickup.xs("default", level="settings")
    tuned = pickup.xs("tuned", level="settings") if "tuned" in pickup.index.get_level_values("settings") else None
    frame = labs_info.join(view[["validate_p50_ms", "deferred_p50_ms", "enqueue_cost_us", "view_ratio"]
                                + [c for c in ("wrk_enqueue_cost_us", "wrk_view_ratio") if c in view]])
    frame = frame.join(default[["n", "p50_ms", "p99_ms", "idle_cpu_pct"]].add_prefix("pickup_"))
    if tuned is not None:
        frame = frame.join(tuned[["p50_ms", "p99_ms", "idle_cpu_pct"]].add_prefix("tuned_pickup_"))
    frame = frame.join(e2e[["sent", "accepted", "delivered", "response_p50_ms", "response_p99_ms", "completion_p50_ms",
                            "completion_p99_ms"]].add_prefix("e2e_"))
    frame = frame.join(drain[["drain_per_s"]])
    frame = frame.join(kills[["kills", "requested", "lost", "duplicated", "stuck", "late_copies", "settled"]]
                       .add_prefix("kill_"))
    frame = frame.join(tx[["trials", *OUTCOMES]].rename(columns={"trials": "tx_trials"}))
    frame = frame.join(mem[["servers_mb", "worker_mb", "web_mb"]])
    return frame


def describe(labs: dict[str, Lab]) -> pd.DataFrame:
    return pd.DataFrame([{"backend": b, "label": lab.queue.label, "delivery": lab.queue.delivery,
                          "blocking_pickup": lab.queue.blocking_pickup, "has_workers": has_workers(lab),
                          "tuning_knob": ", ".join(f"{k}={v}" for k, v in lab.queue.tuned_worker_config.items()),
                          "enqueue_in_transaction": lab.queue.enqueue_in_transaction,
                          "servers": ", ".join(lab.queue.servers)} for b, lab in labs.items()]).set_index("backend")


E2E_FIGURES = {"e2e_p50_ms": "completion_p50_ms", "e2e_p99_ms": "completion_p99_ms",
               "response_p50_ms": "response_p50_ms", "response_p99_ms": "response_p99_ms"}  # figure -> e2e_ column


def key_figures(table: pd.DataFrame, deliveries: pd.DataFrame) -> dict:
    """One flat dict, <backend>_<what>_<unit>, from the matrix (matrix()) and view_cost's deliveries: what
    notebook 07 records and `bench queues` prints, and every number verdict() compares."""

    def r(value, digits=1):
        return None if value is None or pd.isna(value) else round(float(value), digits)

    figures: dict[str, object] = {"backends": list(table.index), "tx_trials": int(table["tx_trials"].iloc[0])}
    for b, row in table.iterrows():
        figures.update({
            f"{b}_view_ratio": r(row["view_ratio"], 3), f"{b}_enqueue_cost_us": r(row["enqueue_cost_us"]),
            f"{b}_validate_p50_ms": r(row["validate_p50_ms"], 3), f"{b}_deferred_p50_ms": r(row["deferred_p50_ms"], 3),
            f"{b}_wrk_view_ratio": r(row.get("wrk_view_ratio"), 3),
            f"{b}_wrk_enqueue_cost_us": r(row.get("wrk_enqueue_cost_us")),
            f"{b}_pickup_p50_ms": r(row["pickup_p50_ms"], 2), f"{b}_pickup_p99_ms": r(row["pickup_p99_ms"], 2),
            f"{b}_idle_cpu_pct": r(row["pickup_idle_cpu_pct"], 2),
            f"{b}_tuned_pickup_p50_ms": r(row.get("tuned_pickup_p50_ms"), 2),
            f"{b}_tuned_pickup_p99_ms": r(row.get("tuned_pickup_p99_ms"), 2),
            f"{b}_tuned_idle_cpu_pct": r(row.get("tuned_pickup_idle_cpu_pct"), 2),
            f"{b}_drain_per_s": r(row["drain_per_s"], 0),
            f"{b}_kills": int(row["kill_kills"]), f"{b}_requested_under_kills": int(row["kill_requested"]),
            f"{b}_lost_on_kill": int(row["kill_lost"]), f"{b}_duplicated_on_kill": int(row["kill_duplicated"]),
            f"{b}_stuck_on_kill": int(row["kill_stuck"]), f"{b}_late_copies_on_kill": int(row["kill_late_copies"]),
            f"{b}_settled_after_kills": bool(row["kill_settled"]),
            f"{b}_runs_after_rollback": r(row["ran_after_rollback"], 0),
            f"{b}_runs_before_commit": r(row["ran_before_commit"], 0),
            f"{b}_runs_after_commit": r(row["ran_after_commit"], 0),
            f"{b}_tx_never_ran": r(row["never_ran"], 0),
            f"{b}_on_commit_ran_before_commit": r(row["on_commit_ran_before_commit"], 0),
            f"{b}_servers_mb": r(row["servers_mb"]), f"{b}_worker_mb": r(row["worker_mb"]),
            f"{b}_web_mb": r(row["web_mb"]),
            f"{b}_view_deferred_sent": int(deliveries.loc[b, "requested"]),
            f"{b}_view_accepted": int(deliveries.loc[b, "accepted"]),
            f"{b}_view_emails_arrived": int(deliveries.loc[b, "emails_arrived"]),
        })
        # end to end under open-loop load: completion (due -> the SMTP server's 250) and response, ms; the counts
        figures.update({f"{b}_{name}": r(row[f"e2e_{column}"], 2) for name, column in E2E_FIGURES.items()})
        figures.update({f"{b}_e2e_{count}": int(row[f"e2e_{count}"]) for count in ("sent", "accepted", "delivered")})
    return figures


def verdict(figures: dict, table: pd.DataFrame, full: bool) -> dict[str, bool]:
    """The claims, from key_figures() and the matrix's declared columns (never a backend's name). A single quick-mode
    kill may find no task in flight, so that the kills lost something is checked in full mode only (five kills per
    backend, each worker busy most of the time); what each backend promises is checked always."""
    f, backends = figures, list(table.index)
    at_most = [b for b in backends if table.loc[b, "delivery"] == "at-most-once" and table.loc[b, "has_workers"]]
    at_least = [b for b in backends if table.loc[b, "delivery"] == "at-least-once"]
    polled = [b for b in backends if not table.loc[b, "blocking_pickup"] and table.loc[b, "has_workers"]]
    blocking = [b for b in backends if table.loc[b, "blocking_pickup"]]
    return {
        "every backend delivered every email its 202s promised when nothing failed": all(
            f[f"{b}_view_emails_arrived"] == f[f"{b}_view_accepted"] == f[f"{b}_view_deferred_sent"] > 0
            for b in backends),
        "under open-loop load every backend answered every request 202 and delivered every email": all(
            f[f"{b}_e2e_delivered"] == f[f"{b}_e2e_accepted"] == f[f"{b}_e2e_sent"] > 0 for b in backends),
        "every backend's kills settled, nothing arriving after": all(
            f[f"{b}_settled_after_kills"] and f[f"{b}_late_copies_on_kill"] == 0 for b in backends),
        "under kills each backend kept its declared delivery (at-most-once: no email twice; at-least-once: none lost)":
            all(f[f"{b}_duplicated_on_kill"] == 0 for b in at_most) and all(
                f[f"{b}_lost_on_kill"] == 0 for b in at_least),
        "the kills lost accepted emails on the at-most-once backends (full mode; quick: each kill met a worker)": all(
            f[f"{b}_kills"] > 0 and (f[f"{b}_lost_on_kill"] > 0 or not full) for b in at_most),
        "every blocking-pop backend picked up at least 2x sooner than every polling one (p50, default settings)": (
            bool(blocking) and bool(polled) and max(f[f"{b}_pickup_p50_ms"] for b in blocking) * 2
            < min(f[f"{b}_pickup_p50_ms"] for b in polled)),
        "rolled back: the task never ran where it is a row of the site's transaction, and ran on every other backend":
            all(f[f"{b}_runs_after_rollback"] == (0 if table.loc[b, "enqueue_in_transaction"] else f["tx_trials"])
                for b in backends),
        "in its transaction, a transactional backend's task ran only after the commit, every time": all(
            f[f"{b}_runs_before_commit"] == 0 and f[f"{b}_runs_after_commit"] == f["tx_trials"]
            for b in backends if table.loc[b, "enqueue_in_transaction"]),
        "with transaction.on_commit, no task ran before its commit, and every committed task ran, on every backend":
            all(f[f"{b}_on_commit_ran_before_commit"] == 0 and f[f"{b}_tx_never_ran"] == 0 for b in backends),
        "each polling backend's tuning knob cut its pickup p50 at least 2x": all(
            f[f"{b}_tuned_pickup_p50_ms"] is not None and f[f"{b}_tuned_pickup_p50_ms"] * 2 < f[f"{b}_pickup_p50_ms"]
            for b in polled if table.loc[b, "tuning_knob"]),
    }


def findings_markdown(figures: dict, labels: dict[str, str]) -> str:
    """The notebook's "What the numbers say": one bullet per experiment, every number from `figures` (key_figures()),
    backends named by `labels` (backend -> its queue's label) in that order."""
    f = figures

    def listing(key: str, fmt: str, unit: str = "") -> str:
        return "; ".join(f"*{label}* " + ("n/a" if f[f"{b}_{key}"] is None else format(f[f"{b}_{key}"], fmt) + unit)
                         for b, label in labels.items())

    return "\n".join([
        f"* **The enqueue's cost in the request** (deferred p50 − validate p50, timing client): "
        f"{listing('enqueue_cost_us', '.0f', ' µs')}. Ratio deferred / validate: {listing('view_ratio', '.2f')}. "
        f"wrk at one connection: {listing('wrk_enqueue_cost_us', '.0f', ' µs')}.",
        f"* **Pickup after idle, default settings** (p50): {listing('pickup_p50_ms', '.1f', ' ms')}; p99: "
        f"{listing('pickup_p99_ms', '.1f', ' ms')}. With the tuning knob: "
        f"{listing('tuned_pickup_p50_ms', '.1f', ' ms')}, for idle worker CPU "
        f"{listing('tuned_idle_cpu_pct', '.2f', ' %')} of one core, against {listing('idle_cpu_pct', '.2f', ' %')} "
        f"with the defaults.",
        f"* **End to end under open-loop load** (request due to the SMTP server's 250, default settings), p50: "
        f"{listing('e2e_p50_ms', '.1f', ' ms')}; p99: {listing('e2e_p99_ms', '.1f', ' ms')}; the response's p99: "
        f"{listing('response_p99_ms', '.1f', ' ms')}; emails delivered of those accepted: "
        + "; ".join(f"*{label}* {f[f'{b}_e2e_delivered']} of {f[f'{b}_e2e_accepted']}" for b, label in labels.items())
        + ".",
        f"* **Drain by one worker**: {listing('drain_per_s', '.0f', ' tasks/s')}.",
        f"* **Kills** ({listing('kills', 'd')} per backend): lost {listing('lost_on_kill', 'd')}; duplicated "
        f"{listing('duplicated_on_kill', 'd')}; stuck {listing('stuck_on_kill', 'd')}, of "
        f"{listing('requested_under_kills', 'd')} accepted.",
        f"* **Transactions** ({f['tx_trials']} trial(s) each): ran after a rollback "
        f"{listing('runs_after_rollback', '.0f')}; ran before its commit {listing('runs_before_commit', '.0f')}; with "
        f"`on_commit`, before the commit {listing('on_commit_ran_before_commit', '.0f')}.",
        f"* **Memory**: the queue's servers {listing('servers_mb', '.0f', ' MiB')}; one worker "
        f"{listing('worker_mb', '.0f', ' MiB')}.",
    ])


# -- one run: what the notebook does cell by cell, and the benchmark at once --------------------------------------

def run_all(run_dir, backends: list[str], view_requests: int, wrk_s: float, idle_s: list[float], repeats: int,
            e2e: E2EPlan, drain_tasks: int, plan: KillPlan, tx_trials: int, full: bool, tx_hold_ms: int = 1000,
            view_turns: int = 2, progress=print) -> dict:
    """Every experiment on every backend, side by side; saves the tables and returns the figures, the matrix and
    the verdict's checks (the benchmark's path; the notebook calls the same functions one cell each)."""
    with side_by_side(run_dir, backends, **LAB) as labs:
        info = describe(labs)
        view = view_cost(labs, view_requests, turns=view_turns, wrk_s=wrk_s)
        progress("view cost measured")
        frames = [pickups(labs, idle_s, repeats, "default")]
        e2e_frame = end_to_end(labs, e2e)
        progress("pickups (default settings) and end to end measured")
        drained = drains(labs, drain_tasks)
        frames.append(pickups(tunable(labs), idle_s, repeats, "tuned"))
        progress("drains and tuned pickups measured")
        mem = memory(labs)
        kills, timeline = kill_workers_under_load(labs, plan)
        progress("kills measured")
        tx = transactions(labs, tx_trials, hold_ms=tx_hold_ms)
        stop_all(labs)
    picked = pd.concat(frames, ignore_index=True)
    table = matrix(info, view_summary(view), pickup_summary(picked), end_to_end_summary(e2e_frame), drained, kills, tx,
                   mem)
    for name, frame in (("view", view.timings), ("wrk", view.wrk), ("pickups", picked), ("e2e", e2e_frame),
                        ("kills", kills.reset_index()), ("kill-timeline", timeline), ("matrix", table.reset_index())):
        runs.save_table(run_dir, name, frame)
    figures = key_figures(table, view.deliveries)
    return {"figures": figures, "table": table, "checks": verdict(figures, table, full)}


@benchmark("queues")
def queues_bench(run_dir, view_requests: int = 400, wrk_s: float = 1.0, idle_s: tuple = (0.5, 2.0, 10.0),
                 repeats: int = 3, e2e_rate: float = 20.0, e2e_s: float = 5.0, drain_tasks: int = 5000, kills: int = 5,
                 tx_trials: int = 5) -> dict:
    """Every backend of helpers.stack.queues, side by side: the view's cost, pickup after idle (default and tuned,
    idle CPU), end to end at `e2e_rate` requests/s for `e2e_s` (open loop), drain of `drain_tasks` no-op tasks by one
    worker, `kills` SIGKILLs mid-send, transactions, memory."""
    done = run_all(run_dir, names(), view_requests, wrk_s, list(idle_s), repeats, E2EPlan(e2e_rate, e2e_s),
                   drain_tasks, KillPlan(kills=kills), tx_trials, full=True)
    return {**done["figures"], "verdict": done["checks"]}
