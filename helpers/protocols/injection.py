"""Injecting one fault into a running lab, and ending it:

- consumer_kill: SIGKILL every consumer process (tasks in flight die with it); recovered by starting it again
  (with a slow SMTP server every worker is mid-send when it dies);
- smtp_4xx / smtp_5xx: the SMTP server refuses every message (451 / 554) until recovered;
- smtp_drop: the SMTP server cuts each connection when the message arrives, until recovered;
- smtp_stall: the SMTP server holds each command's reply `stall_s` (EHLO, MAIL, RCPT, end of DATA), until recovered:
  a provider that turns slow, whose exchange outlasts any per-operation socket timeout longer than stall_s;
- smtp_550: permanent, not switched off: the SMTP server answers 550 (no such user) to the recipients `unknown_users`
  matches (helpers.stack.smtp_sink.set_provider); no retry can deliver them, and a design must say they failed;
- web_restart: SIGKILL the web server's master and workers mid-request, start it again on the same port
  `fault_for_s` later (a supervisor's restart delay: without one, the new server listens before it loads the site
  and requests wait in its backlog, so an episode often saw no request fail); its own recovery.

These are process crashes and a misbehaving provider, not a power cut or a kernel crash.
"""

from __future__ import annotations

from helpers.stack import Lab
from helpers.stack.smtp_sink import set_fault, set_provider

FAULTS = ("consumer_kill", "smtp_4xx", "smtp_5xx", "smtp_drop", "smtp_stall", "smtp_550", "web_restart")
SMTP_FAULTS = ("smtp_4xx", "smtp_5xx", "smtp_drop", "smtp_stall", "smtp_550")
TRANSIENT_SMTP_FAULTS = ("smtp_4xx", "smtp_drop", "smtp_stall")  # a retry after the fault ended delivers
PERMANENT_FAULTS = ("smtp_550",)  # no retry delivers: the recipient does not exist


def inject(lab: Lab, fault: str, smtp_delay_s: float | None = None, fault_for_s: float = 0.0,
           stall_s: float | None = None, unknown_users: str | None = None, record_first: bool = False) -> None:
    """Start the fault; `smtp_delay_s` is kept through the SMTP server's fault modes (None: the lab's own). A web
    server crash is its own recovery: the server is down `fault_for_s`, then started again. smtp_stall holds each
    command `stall_s`; smtp_550 refuses the recipients `unknown_users` matches, for good (the provider keeps
    `record_first`)."""
    if fault == "consumer_kill":
        lab.queue.kill_workers()
    elif fault == "smtp_4xx":
        set_fault(lab.smtp_control, "refuse", 451, delay_s=smtp_delay_s)
    elif fault == "smtp_5xx":
        set_fault(lab.smtp_control, "refuse", 554, delay_s=smtp_delay_s)
    elif fault == "smtp_drop":
        set_fault(lab.smtp_control, "drop", delay_s=smtp_delay_s)
    elif fault == "smtp_stall":
        set_fault(lab.smtp_control, "stall", delay_s=smtp_delay_s, stall_s=stall_s)
    elif fault == "smtp_550":
        set_provider(lab.smtp_control, record_first=record_first, unknown_users=unknown_users)
    elif fault == "web_restart":
        lab.restart_web(crash=True, down_s=fault_for_s)
    else:
        raise ValueError(f"unknown fault {fault!r}; choose from {FAULTS}")


def recover(lab: Lab, fault: str, smtp_delay_s: float | None = None) -> None:
    """End the fault (nothing to do for a web restart, which ended on its own, nor for a permanent fault)."""
    if fault == "consumer_kill":
        lab.start_consumer()
    elif fault.startswith("smtp_") and fault not in PERMANENT_FAULTS:
        set_fault(lab.smtp_control, "ok", delay_s=smtp_delay_s)
