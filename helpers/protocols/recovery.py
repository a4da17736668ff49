"""Recovery after a kill: from a worker's SIGKILL, mid-send, to the moment another worker has run its task (the SMTP
server accepted the message from a send that began after the kill), waited for as long as the backend's declared
redelivery allows."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd

from helpers.protocols.consumers import has_workers
from helpers.protocols.messages import new_tag, recipient
from helpers.stack import Lab
from helpers.stack.processes import poll_until
from helpers.stack.smtp_sink import set_fault

REDELIVERY_MARGIN_S = 10.0  # beyond the declared redelivery: a worker's restart, its pickup and its send
SIGN_TIMEOUT_S = 60.0  # for the worker to start sending (an idle polling worker may look only every 10 s)


def _to(frame: pd.DataFrame, address: str) -> pd.DataFrame:
    return frame.loc[frame["rcpt_tos"].map(lambda r: address in r).astype(bool)]


@dataclass
class Killed:
    """A lab whose workers were SIGKILLed mid-send and restarted: what its wait looks for."""
    lab: Lab
    to: str
    killed_at: float  # epoch s
    bound_s: float

    def copies(self) -> pd.DataFrame:
        return _to(self.lab.mail.deliveries(), self.to)

    def runs_again(self, copies: pd.DataFrame) -> pd.DataFrame:
        """Of `copies`, those accepted within the bound from a send that began after the kill."""
        return copies[(copies["received_at"] > self.killed_at)
                      & (copies["accepted_at"] <= self.killed_at + self.bound_s)]

    def still_waiting(self) -> bool:
        return len(self.runs_again(self.copies())) == 0 and time.time() < self.killed_at + self.bound_s

    def found(self) -> dict:
        copies = self.copies()
        again = self.runs_again(copies)
        return {"recovery_s": float(again["accepted_at"].min()) - self.killed_at if len(again) else None,
                "bound_s": self.bound_s, "held_by_killed_worker": not (copies["accepted_at"] < self.killed_at).any(),
                "copies": len(copies)}


def kill_mid_send(lab: Lab, held_s: float, never_wait_s: float, max_wait_s: float) -> Killed:
    """One email to the deferred view, its own recipient, each SMTP send held `held_s`; once its data reached the
    SMTP server (the worker is mid-send), every worker SIGKILLed, the SMTP delay set back to the lab's own, the
    workers restarted. Its wait is bounded by the declared redelivery + REDELIVERY_MARGIN_S where that fits in
    `max_wait_s`, else by `never_wait_s` (no redelivery declared, or one past the longest wait: django-ox's default
    300 s lease). From the thread that started the lab: a process dies with the thread that started it."""
    redelivery = lab.queue.redelivery_after_s
    fits = redelivery is not None and redelivery + REDELIVERY_MARGIN_S <= max_wait_s
    bound_s = redelivery + REDELIVERY_MARGIN_S if fits else never_wait_s
    to = recipient(new_tag("recovery"), "deferred", 0)
    set_fault(lab.smtp_control, "ok", delay_s=held_s)
    try:
        answer = lab.http.post("/email/deferred/", {"to": to})
        if answer.status != 202:
            raise RuntimeError(f"the deferred view answered {answer.status}, not 202: {answer.read()[:200]!r}")
        poll_until(lambda: len(_to(lab.mail.arrivals(), to)) > 0, SIGN_TIMEOUT_S,
                   lambda: f"no send to {to} began within {SIGN_TIMEOUT_S} s", lambda: lab.running,
                   "waiting for a worker to send")
        killed_at = time.time()
        lab.queue.kill_workers()
    finally:
        set_fault(lab.smtp_control, "ok", delay_s=lab.config.smtp_delay_s)  # before the restart: no resend is held
    if has_workers(lab):
        lab.start_consumer()
    return Killed(lab, to, killed_at, bound_s)


def after_kills(labs: dict[str, Lab], held_s: float = 2.0, never_wait_s: float = 10.0, max_wait_s: float = 60.0
                ) -> pd.DataFrame:
    """Each lab in turn killed mid-send and restarted (kill_mid_send), then every lab's wait at once: the waits
    overlap, the kills and restarts do not. One row per backend: recovery_s (kill to the acceptance of a copy whose
    send began after the kill; None: none came within the bound), bound_s, held_by_killed_worker (no copy had been
    accepted before the kill), copies (accepted by the end of its wait; more than one: a duplicate). Times are epoch
    s on both sides (the SMTP record's and time.time())."""
    killed = {b: kill_mid_send(lab, held_s, never_wait_s, max_wait_s) for b, lab in labs.items()}
    wait_for_runs(killed.values())
    return pd.DataFrame({b: k.found() for b, k in killed.items()}).T


def wait_for_runs(killed) -> None:
    """Until each killed lab's task ran again or its bound passed."""
    waiting = list(killed)
    while waiting := [k for k in waiting if k.still_waiting()]:
        time.sleep(0.05)


def after_kill(lab: Lab, held_s: float = 2.0, never_wait_s: float = 10.0, max_wait_s: float = 60.0) -> dict:
    """after_kills for one lab, as a dict (None stays None)."""
    killed = kill_mid_send(lab, held_s, never_wait_s, max_wait_s)
    wait_for_runs([killed])
    return killed.found()
