"""What the user is told when the SMTP server fails mid-request: one request per endpoint at once under each fault
(a 451 refusal, a cut connection, a provider that stalls past the site's SMTP timeout), the answer and the wait, and
for an endpoint that queues, how its task ended."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from helpers.stack import Lab
from helpers.stack.smtp_sink import set_fault


@dataclass(frozen=True)
class Endpoint:
    name: str  # the row's label
    path: str  # a POST taking `to`
    queues: bool = False  # answers 202 and sends in a task: its task is followed to its end


def smtp_faults(smtp_timeout_s: float) -> dict[str, dict]:
    """The SMTP server's fault modes (helpers.stack.smtp_sink), by name: a stall lasts twice the site's timeout."""
    return {"refuse 451": {"mode": "refuse", "code": 451}, "drop": {"mode": "drop"},
            "stall": {"mode": "ok", "delay_s": 2 * smtp_timeout_s}}


def task_outcome(lab: Lab, task_id: str, timeout_s: float) -> str:
    """A queued task's final state as its status endpoint reports it ("queued"/"running" if not final in time)."""
    deadline = time.monotonic() + timeout_s
    state = "unknown"
    while time.monotonic() < deadline:
        state = json.loads(lab.http.get(f"/tasks/{task_id}/").body).get("state", "unknown")
        if state in ("delivered", "failed"):
            break
        time.sleep(0.05)
    return state


def in_words(row: dict, smtp_timeout_s: float) -> str:
    """The user's side of one fault, in words, from the status and the wait."""
    if 200 <= row["status"] < 300:
        return f"accepted ({row['status']}) in {row['waited_s'] * 1e3:.0f} ms; the task then {row['task_state']}"
    if row["waited_s"] >= 0.8 * smtp_timeout_s:
        return f"waited {row['waited_s']:.1f} s (the SMTP timeout), then error {row['status']}"
    return f"error {row['status']} after {row['waited_s'] * 1e3:.0f} ms"


def ask(lab: Lab, endpoint: Endpoint, fault: str, smtp_timeout_s: float) -> dict:
    started = time.monotonic()
    response = lab.http.post(endpoint.path, {"to": f"fault-{endpoint.name}@example.test"})
    body = json.loads(response.body or b"{}")
    row = {"variant": endpoint.name, "fault": fault, "status": response.status,
           "waited_s": time.monotonic() - started, "error": body.get("error"), "task_state": None}
    if endpoint.queues and "task_id" in body:
        row["task_state"] = task_outcome(lab, body["task_id"], smtp_timeout_s + 5)
    row["user_told"] = in_words(row, smtp_timeout_s)
    return row


def under_smtp_faults(lab: Lab, endpoints: list[Endpoint], smtp_timeout_s: float) -> list[dict]:
    """Each fault in turn, one request per endpoint at once (they share the running server), the queue drained
    first; the SMTP server answers normally again after each."""
    rows = []
    for fault, switch in smtp_faults(smtp_timeout_s).items():
        lab.wait_until_drained()
        set_fault(lab.smtp_control, **switch)
        try:
            with ThreadPoolExecutor(len(endpoints)) as pool:
                rows += pool.map(lambda e, f=fault: ask(lab, e, f, smtp_timeout_s), endpoints)
        finally:
            set_fault(lab.smtp_control, "ok")
    return rows
