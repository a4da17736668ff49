"""Injecting one fault into a running lab, and ending it:

- consumer_kill: SIGKILL every consumer process (tasks in flight die with it); recovered by starting it again
  (with a slow SMTP server every worker is mid-send when it dies);
- smtp_4xx / smtp_5xx: the SMTP server refuses every message (451 / 554) until recovered;
- smtp_drop: the SMTP server cuts each connection when the message arrives, until recovered;
- web_restart: SIGKILL the web server's master and workers mid-request, start it again on the same port
  `fault_for_s` later (a supervisor's restart delay: without one, the new server listens before it loads the site
  and requests wait in its backlog, so an episode often saw no request fail); its own recovery.

These are process crashes and a misbehaving provider, not a power cut or a kernel crash.
"""

from __future__ import annotations

from helpers.stack import Lab
from helpers.stack.smtp_sink import set_fault

FAULTS = ("consumer_kill", "smtp_4xx", "smtp_5xx", "smtp_drop", "web_restart")
SMTP_FAULTS = ("smtp_4xx", "smtp_5xx", "smtp_drop")


def inject(lab: Lab, fault: str, smtp_delay_s: float | None = None, fault_for_s: float = 0.0) -> None:
    """Start the fault; `smtp_delay_s` is kept through the SMTP server's fault modes (None: the lab's own). A web
    server crash is its own recovery: the server is down `fault_for_s`, then started again."""
    if fault == "consumer_kill":
        lab.queue.kill_workers()
    elif fault == "smtp_4xx":
        set_fault(lab.smtp_control, "refuse", 451, delay_s=smtp_delay_s)
    elif fault == "smtp_5xx":
        set_fault(lab.smtp_control, "refuse", 554, delay_s=smtp_delay_s)
    elif fault == "smtp_drop":
        set_fault(lab.smtp_control, "drop", delay_s=smtp_delay_s)
    elif fault == "web_restart":
        lab.restart_web(crash=True, down_s=fault_for_s)
    else:
        raise ValueError(f"unknown fault {fault!r}; choose from {FAULTS}")


def recover(lab: Lab, fault: str, smtp_delay_s: float | None = None) -> None:
    """End the fault (nothing to do for a web restart, which ended on its own)."""
    if fault == "consumer_kill":
        lab.start_consumer()
    elif fault.startswith("smtp_"):
        set_fault(lab.smtp_control, "ok", delay_s=smtp_delay_s)
