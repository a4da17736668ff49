"""Notebook 07, which queue: every queue backend of helpers.stack.queues on one harness, one row each
(`python -m helpers bench which_queue`; `bench queues` is notebook 09's matrix, with production settings). The labs
run side by side (helpers.protocols.turns.side_by_side), alike but for `queue_backend`, one worker each; nothing
here branches on a backend's name, only on what `lab.queue` says (its workers, its tuning knob, its declared
delivery, whether its tasks share the request's transaction).

    view cost        helpers.protocols.view_cost: POST /email/deferred/ against POST /email/validate/ (the same
                     form parsed and validated, nothing enqueued), cross-checked with wrk at one connection; the
                     immediate backend's "deferred" view sends the email inside the request
    pickup           helpers.protocols.pickup.request_to_smtp: one email through /email/deferred/ after each idle
                     period, from the request's send to the SMTP server's receipt; the idle workers' CPU over the
                     same idle periods; default settings, then the tuning knob
    end to end       helpers.protocols.end_to_end: open-loop Poisson load on /email/deferred/ at a fixed rate, each
                     lab in turn: response time, and completion = the SMTP server's 250 (accepted_at) - the
                     request's due time (default settings, as the pickups)
    drain            helpers.protocols.drain.through_each_api: no-op tasks enqueued with the workers stopped, then
                     one worker
    kills            helpers.protocols.kill_episode: every lab's workers SIGKILLed mid-send under load, restarted,
                     settled: lost / duplicated / stuck, message by message
    transactions     helpers.protocols.transactions (queue_semantics.transaction_outcomes)
    memory           helpers.protocols.footprint: RSS of the queue's servers, one worker, the web server
"""

from __future__ import annotations

import pandas as pd

from helpers import runs
from helpers.protocols import drain, end_to_end, footprint, kill_episode, pickup, transactions, view_cost
from helpers.protocols.consumers import has_workers
from helpers.protocols.messages import each_delivered_once
from helpers.protocols.transactions import OUTCOMES
from helpers.protocols.turns import side_by_side, stop_all
from helpers.runs.bench import benchmark
from helpers.stack import Lab
from helpers.stack.queues import names

# Quick mode's subset (the notebook in under a minute): a polled queue whose task is a row of the site's database, in
# the request's transaction, with a tuning knob (django-tasks-db, SQLite), and a blocking pop on a server, outside it
# (Huey, Redis: it starts and stops in half Celery's time). Every kind of backend the verdict compares is among them.
QUICK_BACKENDS = ("djtasks_db_sqlite", "huey_redis")
# One web server of 2 sync workers and one worker per backend; an SMTP server that answers at once (the pickup
# and drain measure the queue, not the provider); Huey's two log lines per task off.
LAB = {"web_workers": 2, "consumer_workers": 1, "smtp_delay_s": 0.0, "huey_log_level": "WARNING"}
BASELINE = "validate"  # the view whose cost the deferred view's is held against (helpers.protocols.view_cost)


def chosen_backends(quick: bool) -> list[str]:
    return list(QUICK_BACKENDS) if quick else names()


def pickup_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per backend and settings (default, tuned): n, p50, p99, max pickup from the request's send to the SMTP
    server's receipt (ms), the idle workers' CPU (% of one core)."""
    return pickup.summary(frame, ["backend", "settings"])


def tunable(labs: dict[str, Lab]) -> dict[str, Lab]:
    """The labs whose backend has a tuning knob (drain.through_each_api leaves their workers tuned)."""
    return {b: lab for b, lab in labs.items() if lab.queue.tuned_worker_config and has_workers(lab)}


# -- the matrix, the figures, the claims ---------------------------------------------------------------------------

def matrix(labs_info: pd.DataFrame, view: pd.DataFrame, pickups: pd.DataFrame, e2e: pd.DataFrame,
           drained: pd.DataFrame, kills: pd.DataFrame, tx: pd.DataFrame, mem: pd.DataFrame) -> pd.DataFrame:
    """One row per backend: what it is (describe()), and every measured column the figures are taken from."""
    default = pickups.xs("default", level="settings")
    tuned = pickups.xs("tuned", level="settings") if "tuned" in pickups.index.get_level_values("settings") else None
    frame = labs_info.join(view[["validate_p50_ms", "deferred_p50_ms", "enqueue_cost_us", "view_ratio"]
                                + [c for c in ("wrk_enqueue_cost_us", "wrk_view_ratio") if c in view]])
    frame = frame.join(default[["n", "p50_ms", "p99_ms", "idle_cpu_pct"]].add_prefix("pickup_"))
    if tuned is not None:
        frame = frame.join(tuned[["p50_ms", "p99_ms", "idle_cpu_pct"]].add_prefix("tuned_pickup_"))
    frame = frame.join(e2e[["sent", "accepted", "delivered", "lost", "duplicated", "response_p50_ms", "response_p99_ms",
                            "completion_p50_ms", "completion_p99_ms"]].add_prefix("e2e_"))
    frame = frame.join(drained[["drain_per_s"]])
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
    notebook 07 records and `bench which_queue` prints, and every number verdict() compares."""

    r = runs.rounded
    figures: dict[str, object] = {"backends": list(table.index), "tx_trials": int(table["tx_trials"].iloc[0])}
    for b, row in table.iterrows():
        figures.update({
            f"{b}_view_ratio": r(row["view_ratio"], 3), f"{b}_enqueue_cost_us": r(row["enqueue_cost_us"]),
            f"{b}_validate_p50_ms": r(row["validate_p50_ms"], 3), f"{b}_deferred_p50_ms": r(row["deferred_p50_ms"], 3),
            f"{b}_wrk_view_ratio": r(row.get("wrk_view_ratio"), 3),
            f"{b}_wrk_enqueue_cost_us": r(row.get("wrk_enqueue_cost_us")),
            f"{b}_pickup_request_to_smtp_p50_ms": r(row["pickup_p50_ms"], 2),
            f"{b}_pickup_request_to_smtp_p99_ms": r(row["pickup_p99_ms"], 2),
            f"{b}_idle_cpu_pct": r(row["pickup_idle_cpu_pct"], 2),
            f"{b}_tuned_pickup_request_to_smtp_p50_ms": r(row.get("tuned_pickup_p50_ms"), 2),
            f"{b}_tuned_pickup_request_to_smtp_p99_ms": r(row.get("tuned_pickup_p99_ms"), 2),
            f"{b}_tuned_idle_cpu_pct": r(row.get("tuned_pickup_idle_cpu_pct"), 2),
            f"{b}_drain_per_s": r(row["drain_per_s"], 0),
            **kill_episode.key_figures(b, row), **transactions.key_figures(b, row),
            f"{b}_servers_mb": r(row["servers_mb"]), f"{b}_worker_mb": r(row["worker_mb"]),
            f"{b}_web_mb": r(row["web_mb"]),
            f"{b}_view_deferred_sent": int(deliveries.loc[b, "requested"]),
            f"{b}_view_accepted": int(deliveries.loc[b, "accepted"]),
            f"{b}_view_emails_arrived": int(deliveries.loc[b, "emails_arrived"]),
            f"{b}_view_lost": int(deliveries.loc[b, "lost"]),
            f"{b}_view_duplicated": int(deliveries.loc[b, "duplicated"]),
        })
        # end to end under open-loop load: completion (due -> the SMTP server's 250) and response, ms; the counts
        figures.update({f"{b}_{name}": r(row[f"e2e_{column}"], 2) for name, column in E2E_FIGURES.items()})
        figures.update({f"{b}_e2e_{count}": int(row[f"e2e_{count}"])
                        for count in ("sent", "accepted", "delivered", "lost", "duplicated")})
    figures.update(declarations(table))
    return figures


DECLARED = ("delivery", "has_workers", "blocking_pickup", "tuning_knob", "enqueue_in_transaction")  # describe()


def declarations(table: pd.DataFrame) -> dict:
    """What each backend declares (describe()'s columns), as figures <backend>_<declaration>: the verdict reads the
    declarations the run had."""
    return {f"{b}_{name}": runs.plain(row[name]) for b, row in table.iterrows() for name in DECLARED}


CLAIMS = {
    "view_delivered": "every backend delivered every email its 202s promised when nothing failed",
    "load_delivered": "under open-loop load every backend answered every request 202 and delivered every email",
    "kills_settled": "every backend's kills settled, nothing arriving after",
    "kills_kept_delivery": "under kills each backend kept its declared delivery (at-most-once: no email twice; "
                           "at-least-once: none lost)",
    "kills_lost": "the kills lost accepted emails on the at-most-once backends (full mode; quick: each kill met a "
                  "worker)",
    "blocking_pickup": "every blocking-pop backend picked up at least 2x sooner than every polling one (p50, default "
                       "settings)",
    "rollback": "rolled back: the task never ran where it is a row of the site's transaction, and ran on every other "
                "backend",
    "in_transaction": "in its transaction, a transactional backend's task ran only after the commit, every time",
    "on_commit": "with transaction.on_commit, no task ran before its commit, and every committed task ran, on every "
                 "backend",
    "tuning_knob": "each polling backend's tuning knob cut its pickup p50 at least 2x",
}


def verdict(figures: dict, quick: bool = False) -> dict[str, bool | None]:
    """The claims, from key_figures() and the backends' declarations recorded with them (never a backend's name). A
    single quick-mode kill may find no task in flight, so that the kills lost something is checked in full mode
    only (five kills per backend, each worker busy most of the time); what each backend promises is checked always."""
    f, backends = figures, figures["backends"]
    at_most = [b for b in backends if f[f"{b}_delivery"] == "at-most-once" and f[f"{b}_has_workers"]]
    at_least = [b for b in backends if f[f"{b}_delivery"] == "at-least-once"]
    polled = [b for b in backends if not f[f"{b}_blocking_pickup"] and f[f"{b}_has_workers"]]
    blocking = [b for b in backends if f[f"{b}_blocking_pickup"]]
    transactional = [b for b in backends if f[f"{b}_enqueue_in_transaction"]]
    return runs.claims(CLAIMS, {
        "view_delivered": all(f[f"{b}_view_accepted"] == f[f"{b}_view_deferred_sent"] > 0
                              and each_delivered_once(f, f"{b}_view_lost", f"{b}_view_duplicated",
                                                      f"{b}_view_emails_arrived", f"{b}_view_accepted")
                              for b in backends),
        "load_delivered": all(f[f"{b}_e2e_accepted"] == f[f"{b}_e2e_sent"] > 0
                              and each_delivered_once(f, f"{b}_e2e_lost", f"{b}_e2e_duplicated", f"{b}_e2e_delivered",
                                                      f"{b}_e2e_accepted")
                              for b in backends),
        "kills_settled": all(f[f"{b}_settled_after_kills"] and f[f"{b}_late_copies_on_kill"] == 0 for b in backends),
        "kills_kept_delivery": (all(f[f"{b}_duplicated_on_kill"] == 0 for b in at_most)
                                and all(f[f"{b}_lost_on_kill"] == 0 for b in at_least)),
        "kills_lost": all(f[f"{b}_kills"] > 0 and (f[f"{b}_lost_on_kill"] > 0 or quick) for b in at_most),
        "blocking_pickup": (bool(blocking) and bool(polled)
                            and max(f[f"{b}_pickup_request_to_smtp_p50_ms"] for b in blocking) * 2
                            < min(f[f"{b}_pickup_request_to_smtp_p50_ms"] for b in polled)),
        "rollback": all(f[f"{b}_runs_after_rollback"] == (0 if b in transactional else f["tx_trials"])
                        for b in backends),
        "in_transaction": all(f[f"{b}_runs_before_commit"] == 0 and f[f"{b}_runs_after_commit"] == f["tx_trials"]
                              for b in transactional),
        "on_commit": all(f[f"{b}_on_commit_ran_before_commit"] == 0 and f[f"{b}_tx_never_ran"] == 0 for b in backends),
        "tuning_knob": all(f[f"{b}_tuned_pickup_request_to_smtp_p50_ms"] is not None
                           and f[f"{b}_tuned_pickup_request_to_smtp_p50_ms"] * 2
                           < f[f"{b}_pickup_request_to_smtp_p50_ms"]
                           for b in polled if f[f"{b}_tuning_knob"]),
    }, quick)


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
        f"* **Pickup after idle, default settings** (request to SMTP receipt, p50): "
        f"{listing('pickup_request_to_smtp_p50_ms', '.1f', ' ms')}; p99: "
        f"{listing('pickup_request_to_smtp_p99_ms', '.1f', ' ms')}. With the tuning knob: "
        f"{listing('tuned_pickup_request_to_smtp_p50_ms', '.1f', ' ms')}, for idle worker CPU "
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
            e2e: end_to_end.E2EPlan, drain_tasks: int, plan: kill_episode.KillPlan, tx_trials: int, full: bool,
            tx_hold_ms: int = 1000, view_turns: int = 2, progress=print) -> dict:
    """Every experiment on every backend, side by side; saves the tables and returns the figures, the matrix and
    the verdict's checks (the benchmark's path; the notebook calls the same functions one cell each)."""
    with side_by_side(run_dir, backends, **LAB) as labs:
        info = describe(labs)
        view = view_cost.measure(labs, BASELINE, view_requests, turns=view_turns, wrk_s=wrk_s)
        progress("view cost measured")
        frames = [pickup.request_to_smtp(labs, idle_s, repeats, "default")]
        e2e_frame = end_to_end.measure(labs, e2e)
        progress("pickups (default settings) and end to end measured")
        drained = drain.through_each_api(labs, drain_tasks)
        frames.append(pickup.request_to_smtp(tunable(labs), idle_s, repeats, "tuned"))
        progress("drains and tuned pickups measured")
        mem = footprint.memory(labs)
        kills, timeline = kill_episode.kill_workers_under_load(labs, plan)
        progress("kills measured")
        tx = transactions.outcomes(labs, tx_trials, hold_ms=tx_hold_ms)
        stop_all(labs)
    picked = pd.concat(frames, ignore_index=True)
    table = matrix(info, view_cost.summary(view, BASELINE), pickup_summary(picked), end_to_end.summary(e2e_frame),
                   drained, kills, tx, mem)
    for name, frame in (("view", view.timings), ("wrk", view.wrk), ("pickups", picked), ("e2e", e2e_frame),
                        ("kills", kills.reset_index()), ("kill-timeline", timeline), ("matrix", table.reset_index())):
        runs.save_table(run_dir, name, frame)
    figures = key_figures(table, view.deliveries)
    return {"figures": figures, "table": table, "checks": verdict(figures, quick=not full)}


@benchmark("which_queue")
def queues_bench(run_dir, view_requests: int = 400, wrk_s: float = 1.0, idle_s: tuple = (0.5, 2.0, 10.0),
                 repeats: int = 3, e2e_rate: float = 20.0, e2e_s: float = 5.0, drain_tasks: int = 5000, kills: int = 5,
                 tx_trials: int = 5) -> dict:
    """Every backend of helpers.stack.queues, side by side: the view's cost, pickup after idle (default and tuned,
    idle CPU), end to end at `e2e_rate` requests/s for `e2e_s` (open loop), drain of `drain_tasks` no-op tasks by one
    worker, `kills` SIGKILLs mid-send, transactions, memory."""
    done = run_all(run_dir, names(), view_requests, wrk_s, list(idle_s), repeats, end_to_end.E2EPlan(e2e_rate, e2e_s),
                   drain_tasks, kill_episode.KillPlan(kills=kills), tx_trials, full=True)
    return {**done["figures"], "verdict": done["checks"]}
