"""Recovery after a kill: from a worker's SIGKILL, mid-send, to the moment another worker has run its task (the SMTP
server accepted the message from a send that began after the kill), waited for as long as the backend's declared
redelivery allows."""

from __future__ import annotations

import time

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


def after_kill(lab: Lab, held_s: float = 2.0, never_wait_s: float = 10.0, max_wait_s: float = 60.0) -> dict:
    """One email to the deferred view, its own recipient, each SMTP send held `held_s`; once its data reached the
    SMTP server (the worker is mid-send), every worker SIGKILLed, the SMTP delay set back to the lab's own, the
    workers restarted. Then wait, up to `bound_s` from the kill (redelivery_after_s + REDELIVERY_MARGIN_S, at most
    `max_wait_s`, where the backend declares redelivery; `never_wait_s` where it declares none), for a copy whose
    send began after the kill to be accepted.

    Returns {"recovery_s": kill to that copy's acceptance (None: none came within the bound), "bound_s",
    "held_by_killed_worker": no copy had been accepted before the kill, "copies": copies accepted by the end of the
    wait (more than one: a duplicate)}. Times are epoch s on both sides (the SMTP record's and time.time())."""
    redelivery = lab.queue.redelivery_after_s
    bound_s = never_wait_s if redelivery is None else min(redelivery + REDELIVERY_MARGIN_S, max_wait_s)
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

    def run_again() -> pd.DataFrame:
        """Copies accepted within the bound from a send that began after the kill."""
        copies = _to(lab.mail.deliveries(), to)
        return copies[(copies["received_at"] > killed_at) & (copies["accepted_at"] <= killed_at + bound_s)]

    while len(again := run_again()) == 0 and time.time() < killed_at + bound_s:
        time.sleep(0.05)
    copies = _to(lab.mail.deliveries(), to)
    return {"recovery_s": float(again["accepted_at"].min()) - killed_at if len(again) else None,
            "bound_s": bound_s, "held_by_killed_worker": not (copies["accepted_at"] < killed_at).any(),
            "copies": len(copies)}
