"""Settling: waiting until a lab's work is over, so that what is not delivered then counts as lost. One rule for
every episode: give up on a lab after `timeout_s` without progress, never after a fixed total (a long episode's
backlog takes minutes to drain while it plainly makes progress; only a stall means the work is stuck)."""

from __future__ import annotations

import time
from collections.abc import Callable

from helpers.stack import Lab

LATE_CHECK_S = 1.0  # how long after settling the SMTP record is read again for copies still on their way


def stuck(lab: Lab) -> int:
    """Tasks the queue still holds as taken (running, unacknowledged) by the queue's own account; 0 where it keeps
    no such account (the task then lives only in the dead worker's memory)."""
    counts = lab.queue.counts()
    return int(sum(v for k, v in counts.items() if k not in ("pending", "scheduled") and v is not None))


def settle(labs: dict[str, Lab], timeout_s: float, quiet_s: float = 1.0, limit_s: float | None = None,
           open_work: Callable[[Lab], int] | None = None, redelivery_wait_s: float | None = None
           ) -> dict[str, dict]:
    """Until, in every lab, nothing waits in the queue (pending, scheduled), no `open_work` is left (for example the
    ledger's unfinished jobs), a queue that hands a dead worker's task back (redelivery_after_s) has done so or had
    that long (+5 s; not waited for when it declares longer than `redelivery_wait_s`: its dead worker's tasks stay
    stuck), and the SMTP server has accepted nothing new for `quiet_s`.

    `timeout_s` counts from a lab's last progress (a message accepted, less work open); `limit_s` (10 x timeout_s by
    default) bounds the whole wait. Per lab: {"settled": False when either ran out first, "settle_s"}: a lab that
    did not settle has work under way, and its account is not final. Raises RuntimeError when a lab process died
    (a dead worker or reconciler would leave its work behind for good)."""
    limit_s = 10 * timeout_s if limit_s is None else limit_s
    began = time.monotonic()
    seen = {name: (lab.mail.emails_received(), None) for name, lab in labs.items()}  # emails, open work
    last_change = dict.fromkeys(labs, began)  # the last message accepted
    last_progress = dict.fromkeys(labs, began)
    done: dict[str, dict] = {}
    while len(done) < len(labs):
        time.sleep(0.2)
        now = time.monotonic()
        for name, lab in labs.items():
            if name in done:
                continue
            if not lab.running:
                raise RuntimeError(f"a lab process died while the lab settled: {lab.processes}")
            count, counts = lab.mail.emails_received(), lab.queue.counts()
            still_open = counts["pending"] + (counts["scheduled"] or 0) + (open_work(lab) if open_work else 0)
            before_count, before_open = seen[name]
            if count != before_count:
                last_change[name] = last_progress[name] = now
            if before_open is not None and still_open < before_open:
                last_progress[name] = now
            seen[name] = (count, still_open)
            redelivery = lab.queue.redelivery_after_s
            handed_back = (redelivery is None or stuck(lab) == 0 or now - began > redelivery + 5.0
                           or (redelivery_wait_s is not None and redelivery > redelivery_wait_s))
            if still_open == 0 and handed_back and now - last_change[name] >= quiet_s:
                done[name] = {"settled": True, "settle_s": now - began}
            elif now - last_progress[name] >= timeout_s or now - began >= limit_s:
                done[name] = {"settled": False, "settle_s": now - began}
    return done
