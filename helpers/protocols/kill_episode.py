"""The kill episode: open-loop load on every lab's deferred view at once, every lab's workers SIGKILLed mid-send
several times and restarted, then every lab settled and its account taken message by message: lost, duplicated,
late, and stuck (left running or unacknowledged by the queue's own account)."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import pandas as pd

from helpers.instruments.endpoints import load_spec
from helpers.protocols import loads
from helpers.protocols.consumers import has_workers
from helpers.protocols.messages import account, new_tag, received_by_request, recipient
from helpers.protocols.settle import LATE_CHECK_S, settle, stuck
from helpers.stack import Lab
from helpers.stack.smtp_sink import set_fault


@dataclass
class KillPlan:
    kills: int = 5  # SIGKILLs of every lab's workers
    rate: float = 3.0  # deferred requests/s to each lab (open loop, Poisson)
    smtp_delay_s: float = 0.25  # each send takes this long: a worker is mid-send most of the time
    first_kill_s: float = 1.5  # after the loads are seen running
    down_s: float = 0.5  # how long the workers stay dead
    gap_s: float = 1.5  # after a round of restarts, before the next kill
    restart_s: float = 2.5  # a worker's restart, for the load's length (a round restarts every lab in turn)
    settle_timeout_s: float = 90.0  # settling gives up on a lab after this long without progress
    quiet_s: float = 1.0
    redelivery_wait_s: float | None = None  # a declared redelivery longer than this is not waited for (settle)


def key_figures(b: str, row) -> dict:
    """One backend's kill figures, <b>_<what>, from a matrix row whose kill columns are prefixed `kill_` (the
    episode's own row, add_prefix("kill_"))."""
    return {f"{b}_kills": int(row["kill_kills"]), f"{b}_requested_under_kills": int(row["kill_requested"]),
            f"{b}_lost_on_kill": int(row["kill_lost"]), f"{b}_duplicated_on_kill": int(row["kill_duplicated"]),
            f"{b}_stuck_on_kill": int(row["kill_stuck"]), f"{b}_late_copies_on_kill": int(row["kill_late_copies"]),
            f"{b}_settled_after_kills": bool(row["kill_settled"])}


def kill_workers_under_load(labs: dict[str, Lab], plan: KillPlan, late_check_s: float = LATE_CHECK_S
                            ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each request its own recipient; `plan.kills` times, every lab's workers SIGKILLed at the same moment,
    restarted `down_s` later (one lab after another, from this thread: a process dies with the thread that started
    it); then settled, and each lab's account read again `late_check_s` later. Returns (one row per backend, the
    kills' timeline)."""
    tag = new_tag("kill")
    with_workers = {b: lab for b, lab in labs.items() if has_workers(lab)}
    round_s = plan.down_s + plan.restart_s * len(with_workers) + plan.gap_s
    duration = plan.first_kill_s + (plan.kills - 1) * round_s + 1.0
    for lab in labs.values():
        set_fault(lab.smtp_control, "ok", delay_s=plan.smtp_delay_s)
    specs = {b: replace(load_spec(lab, "deferred", mode="open", rate=plan.rate, arrival="poisson", connections=16,
                                  duration_s=duration, warmup_s=0.0, timeout_s=30.0, processes=1, seed=k + 1),
                        form={"to": recipient(tag, b)})
             for k, (b, lab) in enumerate(labs.items())}
    signs = [loads.recipient_arrived(lab, f"{tag}-{b}-") for b, lab in labs.items()]
    timeline = []
    with loads.in_background(specs) as running_loads:
        started = loads.started(signs, running_loads.values())
        next_kill = started + plan.first_kill_s
        for k in range(plan.kills):
            time.sleep(max(0.0, next_kill - time.monotonic()))
            running = not any(load.done() for load in running_loads.values())
            at = time.monotonic() - started
            held = {b: stuck(lab) for b, lab in with_workers.items()}
            killed = {b: lab.queue.kill_workers() for b, lab in with_workers.items()}
            time.sleep(plan.down_s)
            for b, lab in with_workers.items():
                lab.start_consumer()
                timeline.append({"backend": b, "kill": k, "at_s": at, "loads_running": running,
                                 "processes_killed": killed[b], "held_before": held[b]})
            next_kill = time.monotonic() + plan.gap_s
        records = {b: load.result().records for b, load in running_loads.items()}
    settled = settle(labs, plan.settle_timeout_s, plan.quiet_s, redelivery_wait_s=plan.redelivery_wait_s)
    at_settle = {b: received_by_request(lab, tag, b) for b, lab in labs.items()}
    time.sleep(late_check_s)
    rows = []
    for b, lab in labs.items():
        set_fault(lab.smtp_control, "ok", delay_s=lab.config.smtp_delay_s)
        counts = account(records[b], received_by_request(lab, tag, b), at_settle[b])
        rows.append({"backend": b, "delivery": lab.queue.delivery, "kills": sum(r["backend"] == b for r in timeline),
                     **settled[b], "stuck": stuck(lab), **counts})
    return pd.DataFrame(rows).set_index("backend"), pd.DataFrame(timeline)
