"""Notebook 09, which setup: every queue backend with workers at its default settings and at the production settings
its own docs recommend (helpers.stack.queues.pairs()), one row per backend and setting, and a "which setup when"
guide chosen from the figures (`python -m helpers bench which_setup`, alias `queues`).

The pairs run in groups of GROUP_SIZE labs side by side (helpers.protocols.turns.side_by_side), alike but for
`queue_backend`; each column is a shared procedure of helpers.protocols, and nothing here branches on a backend's
name, only on what `lab.queue` declares:

    pickup           helpers.protocols.pickup.request_to_smtp after idle periods (default settings)
    end to end       helpers.protocols.end_to_end under open-loop load
    drain            helpers.protocols.drain.by_concurrency: 1, 2 and 4 workers (processes or threads, the
                     backend's own model)
    kills            helpers.protocols.kill_episode: lost / duplicated / stuck, message by message
    recovery         helpers.protocols.recovery.after_kills: from a worker's SIGKILL to its task's run by another
    transactions     helpers.protocols.transactions
    memory           helpers.protocols.footprint
    enqueue cost     helpers.protocols.enqueue_cost: the view's Server-Timing span around the enqueue with the
                     workers running, then a direct enqueue in a loop (median, 95 % CI) and the view's span with
                     them stopped; last, so that the stopped parts' emails go with the labs instead of being sent
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pandas as pd

from helpers import runs
from helpers.protocols import drain, end_to_end, enqueue_cost, footprint, kill_episode, pickup, recovery, transactions
from helpers.protocols.consumers import has_workers
from helpers.protocols.messages import each_delivered_once
from helpers.protocols.turns import side_by_side, stop_all
from helpers.runs import rounded
from helpers.runs.bench import benchmark
from helpers.stack import Lab
from helpers.stack.queues import AT_LEAST_ONCE, backend_class, pairs

# Quick mode (CI): one production twin on the lab's fastest broker to start (each column once; the comparison with
# its default is a full-mode claim anyway).
QUICK_PAIRS = ("huey_redis_production",)
GROUP_SIZE = 4  # labs up at once: the others' idle workers share the 2 cores, so few at a time
LAB = {"web_workers": 2, "consumer_workers": 1, "smtp_delay_s": 0.0, "huey_log_level": "WARNING"}
SERVERLESS = ("sqlite",)  # what "no broker" means in the guide: no server beyond the site's own database file


def chosen_pairs(quick: bool) -> list[str]:
    return [b for b in QUICK_PAIRS if b in pairs()] if quick else pairs()


def groups(backends: list[str], size: int = GROUP_SIZE) -> list[list[str]]:
    """The backends in groups of at most `size` (more only for a default with more twins), each default in the same
    group as its production twins, so that both meet the same machine at the same time."""
    units: dict[str, list[str]] = {}
    for b in backends:
        units.setdefault(backend_class(b).production_of or b, []).append(b)
    found: list[list[str]] = []
    for unit in units.values():
        if found and len(found[-1]) + len(unit) <= size:
            found[-1].extend(unit)
        else:
            found.append(list(unit))
    return found


@dataclass
class Plan:
    inprocess_calls: int = 2000  # direct enqueues timed in a loop
    in_request: int = 1000  # deferred requests timed by the view's enqueue span, per worker state
    idle_s: list[float] = field(default_factory=lambda: [0.5, 2.0])
    pickup_repeats: int = 3
    e2e: end_to_end.E2EPlan = field(default_factory=lambda: end_to_end.E2EPlan(rate=20.0, duration_s=5.0))
    drain_tasks: int = 500  # per drain
    drain_workers: tuple[int, ...] = (1, 2, 4)
    kills: int = 3
    recovery_never_wait_s: float = 5.0  # how long a backend that promises no redelivery is given anyway
    recovery_max_wait_s: float = 120.0  # RQ with its maintenance every 5 s hands a dead worker's job back in ~95 s
    tx_trials: int = 3


def describe(labs: dict[str, Lab]) -> pd.DataFrame:
    """What each backend and setting is and declares (never measured here)."""
    return pd.DataFrame([{
        "backend": b, "label": lab.queue.label, "setting": lab.queue.setting,
        "default_twin": lab.queue.production_of or b, "delivery": lab.queue.delivery,
        "redelivery_after_s": lab.queue.redelivery_after_s, "blocking_pickup": lab.queue.blocking_pickup,
        "enqueue_in_transaction": lab.queue.enqueue_in_transaction, "enqueue_on_commit": lab.queue.enqueue_on_commit,
        "servers": ", ".join(lab.queue.servers),
        "recommended_by": "; ".join(f"{what} ({url})" for what, url in lab.queue.recommended_by),
    } for b, lab in labs.items()]).set_index("backend")


class Stopwatch:
    """Seconds each procedure of a group took, printed as it ends: what the run spends where, to keep it in budget."""

    def __init__(self, group: list[str], progress=print):
        self.group, self.progress, self.rows, self.began = ", ".join(group), progress, [], time.monotonic()

    def lap(self, phase: str) -> None:
        now = time.monotonic()
        self.rows.append({"group": self.group, "phase": phase, "seconds": round(now - self.began, 1)})
        self.progress(f"{self.group}: {phase} in {now - self.began:.0f} s")
        self.began = now

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)


def measure_group(run_dir, backends: list[str], plan: Plan, progress=print) -> dict[str, pd.DataFrame]:
    """Every column for one group of labs side by side: one table per procedure, indexed by backend (and `phases`,
    the seconds each took)."""
    watch = Stopwatch(backends, progress)
    with side_by_side(run_dir, backends, **LAB) as labs:
        info = describe(labs)
        watch.lap("labs started")
        picked = pickup.request_to_smtp(labs, plan.idle_s, plan.pickup_repeats, "default")
        watch.lap("pickup")
        e2e = end_to_end.measure(labs, plan.e2e)
        watch.lap("end to end")
        drains = pd.concat([drain.by_concurrency(lab, plan.drain_tasks, plan.drain_workers).assign(backend=b)
                            for b, lab in labs.items() if has_workers(lab)], ignore_index=True)
        watch.lap("drains")
        mem = footprint.memory(labs)
        kills, timeline = kill_episode.kill_workers_under_load(labs, kill_episode.KillPlan(
            kills=plan.kills, redelivery_wait_s=plan.recovery_max_wait_s))
        watch.lap("kills")
        recovered = recovery.after_kills(labs, never_wait_s=plan.recovery_never_wait_s,
                                         max_wait_s=plan.recovery_max_wait_s)
        watch.lap("recovery")
        tx = transactions.outcomes(labs, plan.tx_trials)
        watch.lap("transactions")
        # last: the stopped parts' emails are left in the queues the labs take down with them
        costs = pd.DataFrame({b: enqueue_cost.measure(lab, plan.inprocess_calls, plan.in_request, then_discard=True)
                              for b, lab in labs.items()}).T
        watch.lap("enqueue cost")
        stop_all(labs)
    watch.lap("stop")
    return {"info": info, "enqueue": costs, "pickups": picked, "e2e": e2e, "drains": drains, "memory": mem,
            "kills": kills, "kill-timeline": timeline, "recovery": recovered, "transactions": tx,
            "phases": watch.frame()}


ROW_TABLES = ("pickups", "e2e", "drains", "kill-timeline", "phases")  # a row per measurement; others, per backend


def merged(parts: list[dict[str, pd.DataFrame]]) -> dict[str, pd.DataFrame]:
    """The groups' tables, one table per procedure."""
    return {name: pd.concat([part[name] for part in parts], ignore_index=name in ROW_TABLES) for name in parts[0]}


def matrix(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per backend and setting: what it declares and every measured column the figures are taken from."""
    picked = pickup.summary(tables["pickups"], ["backend"])
    e2e = end_to_end.summary(tables["e2e"])
    drains = tables["drains"].pivot(index="backend", columns="workers", values="drain_per_s")
    drains.columns = [f"drain_{n}_per_s" for n in drains.columns]
    frame = tables["info"].join(tables["enqueue"].add_prefix("enqueue_"))
    frame = frame.join(picked[["n", "p50_ms", "p99_ms", "idle_cpu_pct"]].add_prefix("pickup_"))
    frame = frame.join(e2e[["sent", "accepted", "delivered", "lost", "duplicated", "completion_p50_ms",
                            "completion_p99_ms", "response_p99_ms"]].add_prefix("e2e_"))
    frame = frame.join(drains)
    frame = frame.join(tables["kills"][["kills", "requested", "lost", "duplicated", "stuck", "late_copies",
                                        "settled"]].add_prefix("kill_"))
    frame = frame.join(tables["recovery"].add_prefix("recovery_"))
    frame = frame.join(tables["transactions"][["trials", *transactions.OUTCOMES]].rename(
        columns={"trials": "tx_trials"}))
    return frame.join(tables["memory"][["servers_mb", "worker_mb", "web_mb"]])


DECLARED = ("label", "setting", "default_twin", "delivery", "redelivery_after_s", "blocking_pickup",
            "enqueue_in_transaction", "enqueue_on_commit", "servers")


def key_figures(table: pd.DataFrame) -> dict:
    """One flat dict, <backend>_<what>_<unit>, from the matrix: what notebook 09 records and `bench queues` prints,
    and every number verdict() and guide() read."""
    figures: dict[str, object] = {"backends": list(table.index), "tx_trials": int(table["tx_trials"].iloc[0])}
    for b, row in table.iterrows():
        figures.update({f"{b}_{name}": runs.plain(row[name]) for name in DECLARED})
        figures.update({
            f"{b}_enqueue_inprocess_us": rounded(row["enqueue_inprocess_us"], 2),
            f"{b}_enqueue_inprocess_ci_us": [rounded(row["enqueue_inprocess_ci_low_us"], 2),
                                             rounded(row["enqueue_inprocess_ci_high_us"], 2)],
            f"{b}_enqueue_in_request_us": rounded(row["enqueue_in_request_us"], 2),
            f"{b}_enqueue_in_request_ci_us": [rounded(row["enqueue_in_request_ci_low_us"], 2),
                                              rounded(row["enqueue_in_request_ci_high_us"], 2)],
            f"{b}_enqueue_in_request_stopped_us": rounded(row["enqueue_in_request_stopped_us"], 2),
            f"{b}_enqueue_in_request_stopped_ci_us": [rounded(row["enqueue_in_request_stopped_ci_low_us"], 2),
                                                      rounded(row["enqueue_in_request_stopped_ci_high_us"], 2)],
            f"{b}_pickup_p50_ms": rounded(row["pickup_p50_ms"], 2),
            f"{b}_pickup_p99_ms": rounded(row["pickup_p99_ms"], 2),
            f"{b}_idle_cpu_pct": rounded(row["pickup_idle_cpu_pct"], 2),
            f"{b}_e2e_p50_ms": rounded(row["e2e_completion_p50_ms"], 2),
            f"{b}_e2e_p99_ms": rounded(row["e2e_completion_p99_ms"], 2),
            f"{b}_response_p99_ms": rounded(row["e2e_response_p99_ms"], 2),
            **{f"{b}_e2e_{n}": int(row[f"e2e_{n}"]) for n in ("sent", "accepted", "delivered", "lost", "duplicated")},
            f"{b}_drain_per_s": rounded(row.get("drain_1_per_s"), 0),
            **{f"{b}_drain_{n}_workers_per_s": rounded(row[f"drain_{n}_per_s"], 0)
               for n in (2, 4) if f"drain_{n}_per_s" in row},
            **kill_episode.key_figures(b, row), **transactions.key_figures(b, row),
            f"{b}_recovery_s": rounded(row["recovery_recovery_s"], 2),
            f"{b}_recovery_bound_s": rounded(row["recovery_bound_s"]),
            f"{b}_recovery_held": bool(row["recovery_held_by_killed_worker"]),
            f"{b}_recovery_copies": int(row["recovery_copies"]),
            f"{b}_worker_mb": rounded(row["worker_mb"]), f"{b}_servers_mb": rounded(row["servers_mb"]),
        })
    return figures


CLAIMS = {
    "load_delivered": "under open-loop load every backend and setting answered every request 202 and delivered each "
                      "email once, message by message",
    "kills_kept_delivery": "under kills each kept its declared delivery (at-most-once: no email twice; "
                           "at-least-once: none lost, where its declared redelivery fits in the wait)",
    "production_no_worse": "no production setting lost a larger share of the emails under kills than its default, "
                           "beyond two standard errors (full mode)",
    "recovery_as_declared": "a killed worker's task ran again within the bound where the backend declares a "
                            "redelivery that fits in the wait, and never where it declares none",
    "enqueue_precise": "every enqueue cost is positive and its 95 % interval narrower than itself (full mode)",
    "rollback": "rolled back: the task never ran where it is a row of the site's transaction or the library holds "
                "the enqueue until the commit, and ran on every other backend",
    "on_commit": "with transaction.on_commit, no task ran before its commit, and every committed task ran",
}


def fits_the_wait(f: dict, b: str) -> bool:
    """Whether the run waited long enough to see the backend's declared redelivery (django-ox's default lease is
    300 s: its kills are reported, not judged)."""
    redelivery = f[f"{b}_redelivery_after_s"]
    return redelivery is None or redelivery < f[f"{b}_recovery_bound_s"]


def lost_share(f: dict, b: str) -> float:
    return f[f"{b}_lost_on_kill"] / max(1, f[f"{b}_requested_under_kills"])


def loses_more(f: dict, twin: str, default: str) -> bool:
    """Whether `twin` lost a larger share under kills than `default` by more than two standard errors of the
    difference (pooled proportions): a kill loses what the worker held, one email more or less is noise."""
    n1, n2 = max(1, f[f"{twin}_requested_under_kills"]), max(1, f[f"{default}_requested_under_kills"])
    pooled = (f[f"{twin}_lost_on_kill"] + f[f"{default}_lost_on_kill"]) / (n1 + n2)
    margin = 2 * (pooled * (1 - pooled) * (1 / n1 + 1 / n2)) ** 0.5
    return lost_share(f, twin) - lost_share(f, default) > margin


def enqueue_precise(f: dict, b: str) -> bool:
    checked = (("enqueue_inprocess_us", "enqueue_inprocess_ci_us"), ("enqueue_in_request_us",
               "enqueue_in_request_ci_us"), ("enqueue_in_request_stopped_us", "enqueue_in_request_stopped_ci_us"))
    return all(f[f"{b}_{m}"] is not None and f[f"{b}_{m}"] > 0 and None not in f[f"{b}_{ci}"]
               and f[f"{b}_{ci}"][1] - f[f"{b}_{ci}"][0] < f[f"{b}_{m}"] for m, ci in checked)


def verdict(figures: dict, quick: bool = False) -> dict[str, bool | None]:
    """The claims, from key_figures() and the declarations recorded with them (never a backend's name)."""
    f, backends = figures, figures["backends"]
    at_most = [b for b in backends if f[f"{b}_delivery"] == "at-most-once"]
    at_least = [b for b in backends if f[f"{b}_delivery"] == "at-least-once" and fits_the_wait(f, b)]
    twins = [b for b in backends if f[f"{b}_setting"] == "production" and f[f"{b}_default_twin"] in backends]
    held = [b for b in backends if f[f"{b}_recovery_held"] and fits_the_wait(f, b)]
    transactional = [b for b in backends if f[f"{b}_enqueue_in_transaction"] or f.get(f"{b}_enqueue_on_commit")]
    return runs.claims(CLAIMS, {
        "load_delivered": all(f[f"{b}_e2e_accepted"] == f[f"{b}_e2e_sent"] > 0
                              and each_delivered_once(f, f"{b}_e2e_lost", f"{b}_e2e_duplicated", f"{b}_e2e_delivered",
                                                      f"{b}_e2e_accepted") for b in backends),
        "kills_kept_delivery": (all(f[f"{b}_kills"] > 0 for b in backends)
                                and all(f[f"{b}_duplicated_on_kill"] == 0 for b in at_most)
                                and all(f[f"{b}_lost_on_kill"] == 0 for b in at_least)),
        "production_no_worse": not any(loses_more(f, b, f[f"{b}_default_twin"]) for b in twins),
        "recovery_as_declared": bool(held) and all(
            (f[f"{b}_recovery_s"] is not None and f[f"{b}_recovery_s"] <= f[f"{b}_recovery_bound_s"])
            if f[f"{b}_redelivery_after_s"] is not None else f[f"{b}_recovery_s"] is None for b in held),
        "enqueue_precise": all(enqueue_precise(f, b) for b in backends),
        "rollback": all(f[f"{b}_runs_after_rollback"] == (0 if b in transactional else f["tx_trials"])
                        for b in backends),
        "on_commit": all(f[f"{b}_on_commit_ran_before_commit"] == 0 and f[f"{b}_tx_never_ran"] == 0 for b in backends),
    }, quick)


# -- which setup when: each line a choice made from the figures ----------------------------------------------------

@dataclass
class Choice:
    need: str  # the reader's situation
    backend: str | None  # the pair chosen, None when none qualifies
    because: str  # the figures behind it, in words with their numbers
    ties: tuple[str, ...] = ()  # pairs as quick as the chosen one within the spread between runs (PICKUP_TIE)


# The pickup p50 of a pair under 100 ms moved by up to 1.44x between notebook 09's two full runs (e581090, f6bf941):
# a pair within this factor of the quickest is as quick as one run can tell, and the guide names it too.
PICKUP_TIE = 1.5


def as_quick(pickup, first: str, among: list[str]) -> tuple[str, ...]:
    """The others of `among` whose pickup (a function of the backend, None when unmeasured) is within PICKUP_TIE of
    `first`'s, quickest first."""
    return tuple(sorted((x for x in among if x != first and pickup(x) is not None
                         and pickup(x) <= PICKUP_TIE * pickup(first)), key=pickup))


def _name(f: dict, b: str) -> str:
    return f"*{f[f'{b}_label']}*"


def _servers(f: dict, b: str) -> set[str]:
    return {s.strip() for s in (f[f"{b}_servers"] or "").split(",") if s.strip()}


BROKERS = {"redis": "Redis", "rabbitmq": "RabbitMQ", "postgres": "PostgreSQL"}


def guide(figures: dict) -> list[Choice]:
    """The decision guide: for each common situation the pair the figures favour, and why (every number cited)."""
    f, backends = figures, figures["backends"]
    # lost nothing here, and its mechanism loses nothing (a pop window or at-most-once would lose one in time)
    kept = [b for b in backends if f[f"{b}_kills"] > 0 and f[f"{b}_lost_on_kill"] == 0
            and f[f"{b}_delivery"] == AT_LEAST_ONCE]

    def fastest(among: list[str]) -> str | None:
        timed = [b for b in among if f[f"{b}_pickup_p50_ms"] is not None]
        return min(timed, key=lambda b: f[f"{b}_pickup_p50_ms"]) if timed else None

    def quickest(need: str, among: list[str], otherwise: str) -> Choice:
        b = fastest(among)
        if b is None:
            return Choice(need, None, otherwise)
        ties = as_quick(lambda x: f[f"{x}_pickup_p50_ms"], b, among)
        tied = "; ".join(f"{_name(f, x)} {f[f'{x}_pickup_p50_ms']:.1f} ms" for x in ties)
        return Choice(need, b, evidence(b) + (
            f"; as quick within the {PICKUP_TIE:g}× a pickup moves between runs: {tied}" if ties else ""), ties)

    def evidence(b: str) -> str:
        s = f[f"{b}_recovery_s"]
        recovered = ("a killed worker's task never ran again" if s is None
                     else f"a killed worker's task ran again {s:.1f} s after the kill")
        return (f"pickup p50 {f[f'{b}_pickup_p50_ms']:.1f} ms; lost {f[f'{b}_lost_on_kill']} and duplicated "
                f"{f[f'{b}_duplicated_on_kill']} of {f[f'{b}_requested_under_kills']} emails under "
                f"{f[f'{b}_kills']} SIGKILLs; {recovered}")

    choices = [quickest("Lose nothing when a worker dies, pick up fastest", kept,
                        "no backend lost nothing: put the ledger (docs/recipe) in front")]
    for broker, name in BROKERS.items():
        others = [x for x in backends if _servers(f, x) == {broker}]
        choices.append(quickest(f"You run {name} and must lose nothing", [x for x in kept if x in others], (
            "none of " + ", ".join(_name(f, x) for x in others) + " lost nothing under kills: put the ledger "
            "(docs/recipe) in front" if others else "not measured")))
    serverless = [x for x in backends if _servers(f, x) <= set(SERVERLESS)]
    b = fastest([x for x in serverless if x in kept]) or fastest(serverless)
    choices.append(Choice("No broker, only the site's database file", b, evidence(b) if b else "none measured"))
    transactional = [x for x in backends if f[f"{x}_runs_after_rollback"] == 0 and f[f"{x}_runs_before_commit"] == 0]
    b = min(transactional, key=lambda x: f[f"{x}_enqueue_in_request_us"]) if transactional else None
    choices.append(Choice("The task must commit or roll back with the request's writes", b, (
        f"ran after none of {f['tx_trials']} rollbacks; enqueue {f[f'{b}_enqueue_in_request_us']:.0f} µs in the "
        f"request; {evidence(b)}") if b else "none: enqueue with transaction.on_commit"))
    drained = [x for x in backends if f.get(f"{x}_drain_4_workers_per_s") is not None]
    b = max(drained, key=lambda x: f[f"{x}_drain_4_workers_per_s"]) if drained else None
    choices.append(Choice("Drain a backlog fastest", b, (
        f"{f[f'{b}_drain_4_workers_per_s']:.0f} tasks/s with 4 workers (one: {f[f'{b}_drain_per_s']:.0f})")
        if b else "not measured"))
    return choices


def guide_markdown(figures: dict) -> str:
    return "\n".join(f"* **{c.need}** → {_name(figures, c.backend) if c.backend else 'nothing here'}: {c.because}."
                     for c in guide(figures))


def run_all(run_dir, backends: list[str], plan: Plan, full: bool, progress=print) -> dict:
    """Every group in turn; saves the tables and returns the figures, the matrix and the verdict's checks."""
    tables = merged([measure_group(run_dir, group, plan, progress) for group in groups(backends)])
    table = matrix(tables)
    for name, frame in tables.items():
        runs.save_table(run_dir, name, frame if name in ROW_TABLES else frame.reset_index())
    runs.save_table(run_dir, "matrix", table.reset_index())
    figures = key_figures(table)
    return {"figures": figures, "table": table, "tables": tables, "checks": verdict(figures, quick=not full)}


@benchmark("which_setup", aliases=("queues",))
def setups_bench(run_dir, inprocess_calls: int = 2000, in_request: int = 1000, drain_tasks: int = 1000,
                 kills: int = 3, tx_trials: int = 3) -> dict:
    """Every backend with workers at its default and production settings (helpers.stack.queues.pairs()): enqueue
    cost, pickup, end to end, drain at 1, 2 and 4 workers, kills, recovery, transactions, memory."""
    plan = Plan(inprocess_calls=inprocess_calls, in_request=in_request, drain_tasks=drain_tasks, kills=kills,
                tx_trials=tx_trials)
    done = run_all(run_dir, pairs(), plan, full=True)
    return {**done["figures"], "guide": guide_markdown(done["figures"]), "verdict": done["checks"]}


def published_figures(pqb: pd.DataFrame | None, pqb_order: dict | None, threadmill: pd.DataFrame | None,
                      threadmill_order: dict | None) -> dict:
    """The published benchmarks redone (helpers.protocols.published): each row's rate beside the published one, and
    whether the orderings agree (None where a table was left out)."""
    figures: dict[str, object] = {"pqb_order_agrees": None if pqb_order is None else bool(pqb_order["agree"])}
    if pqb is not None:
        figures.update({f"pqb_{s}_jobs_per_s": rounded(row["jobs_per_s"]) for s, row in pqb.iterrows()})
        figures.update({f"pqb_{s}_seconds": rounded(row["seconds"], 2) for s, row in pqb.iterrows()})
        figures["pqb_swapped"] = pqb_order["swapped"]
    if threadmill is not None:
        figures.update({f"threadmill_{q.replace('-', '_')}_tasks_per_s": rounded(row["tasks_per_s"])
                        for q, row in threadmill.iterrows()})
    figures["threadmill_order_agrees"] = None if threadmill_order is None else bool(threadmill_order["agree"])
    return figures
