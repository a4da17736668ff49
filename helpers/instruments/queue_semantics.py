"""What a queue backend does, seen from outside the site, the same way for every backend of helpers.stack.queues:
filling its queue with no-op tasks (for a drain measurement), whether a task runs before or despite the transaction
that enqueued it (labsite/views/transactions.py), and what an enqueue costs in-process and served.

Each instrument drives the running lab through the site's own code: a management command or a child process with
the lab's environment (Lab.django_env()), or HTTP requests to its web server. Nothing here branches on a backend.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from functools import partial
from typing import TYPE_CHECKING

from helpers.stack.processes import LOOPBACK

if TYPE_CHECKING:  # pandas only in the parent: the timing children start sooner without it
    import pandas as pd

    from helpers.stack.lab import Lab


def enqueue_noop(lab: Lab, count: int, timeout: float = 600.0) -> dict:
    """Enqueue `count` no-op tasks through the API the lab's settings chose (`python -m django enqueue_noop`, run
    with the lab's environment); returns the command's JSON: count, seconds (enqueueing alone), api."""
    done = lab.manage("enqueue_noop", count, timeout=timeout)
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- transactions: /tx/rollback/, /tx/slow-commit/, /tx/on-commit/ (labsite/views/transactions.py) -----------------

TX_PATHS = {"rollback": "/tx/rollback/", "slow_commit": "/tx/slow-commit/", "on_commit": "/tx/on-commit/"}
# What labsite.jobs.check_signup puts in the subject (labsite.jobs.SIGNUP_SUBJECT).
SIGNUP_SUBJECT = re.compile(r"signup row (visible|missing) when the task started at ([\d.]+)")


def ran_before_commit(subject: str, commit_started_at: float) -> bool:
    """The task ran before its transaction committed: it did not see the row, or it started before the commit
    began (inside the transaction itself, where the row is visible: a backend that runs it in the request)."""
    seen, started_at = SIGNUP_SUBJECT.search(subject).groups()
    return seen == "missing" or float(started_at) < commit_started_at


def transaction_outcomes(lab: Lab, trials: int = 3, hold_ms: int = 1000, settle_s: float = 1.0,
                         timeout: float = 60.0) -> dict:
    """`trials` requests to each transaction view, interleaved, every one with its own recipient; then wait until
    every committed signup's email arrived (or `timeout`), and `settle_s` more for tasks that survived a rollback.
    Counts, per trial: ran_after_rollback (the email of a rolled-back request arrived: the task ran despite the
    rollback), ran_before_commit / ran_after_commit (the task enqueued directly in a transaction held `hold_ms`
    saw its row missing, or started before the commit), on_commit_ran_before_commit / on_commit_ran_after_commit
    (the same, enqueued with transaction.on_commit), never_ran (committed signups whose email never came).
    A worker that polls must look within `hold_ms` to show that it can run before a commit: hold longer than its
    polling interval (and its back-off) when that is the question."""
    tag = secrets.token_hex(3)
    answers: dict[str, dict[str, dict]] = {kind: {} for kind in TX_PATHS}
    for i in range(trials):
        for kind, path in TX_PATHS.items():
            to = f"tx-{tag}-{kind}-{i}@example.test"
            response = lab.http.post(path, {"to": to, "hold_ms": str(hold_ms)})
            if response.status != 200:
                raise RuntimeError(f"{path} answered {response.status}: {response.body[:300]!r}")
            answers[kind][to] = json.loads(response.body)

    committed = set(answers["slow_commit"]) | set(answers["on_commit"])

    def first_subjects() -> dict[str, str]:
        frame = lab.mail.deliveries()
        subjects = {}
        for rcpt_tos, subject in zip(frame["rcpt_tos"], frame["subject"], strict=True):
            if rcpt_tos and rcpt_tos[0].startswith(f"tx-{tag}-"):
                subjects.setdefault(rcpt_tos[0], subject)
        return subjects

    deadline = time.monotonic() + timeout
    while not committed <= set(first_subjects()) and time.monotonic() < deadline and lab.running:
        time.sleep(0.05)
    time.sleep(settle_s)
    subjects = first_subjects()

    def before_commit(kind: str) -> list[bool]:
        return [ran_before_commit(subjects[to], answer["commit_started_at"])
                for to, answer in answers[kind].items() if to in subjects]

    direct, on_commit = before_commit("slow_commit"), before_commit("on_commit")
    return {"trials": trials, "hold_ms": hold_ms,
            "ran_after_rollback": sum(to in subjects for to in answers["rollback"]),
            "ran_before_commit": sum(direct), "ran_after_commit": len(direct) - sum(direct),
            "on_commit_ran_before_commit": sum(on_commit),
            "on_commit_ran_after_commit": len(on_commit) - sum(on_commit),
            "saw_row_missing": sum("row missing" in subjects[to] for to in answers["slow_commit"] if to in subjects),
            "never_ran": len(committed - set(subjects))}


# -- what an enqueue costs: in-process (a child process with the lab's environment) and served ------------------------

IN_PROCESS_KINDS = ("enqueue", "validate", "deferred")
SERVED_KINDS = ("validate", "deferred")


def alternated(kinds: tuple[str, ...], i: int) -> tuple[str, ...]:
    """Round i's order: reversed every other round, so no kind always follows another (and its after-effects)."""
    return kinds if i % 2 == 0 else kinds[::-1]


def time_in_process(plan: dict) -> list[dict]:
    """For each gap of `gaps_s`, `count` timed calls of each IN_PROCESS_KINDS after `warmup` untimed ones, that gap
    apart: the welcome email's enqueue alone (labsite.dispatch), and the validating and deferred views called with
    RequestFactory requests built beforehand (no middleware, no HTTP). The enqueues are real: they land in the lab's
    queue."""
    import django

    django.setup()
    from django.test import RequestFactory

    from labsite import dispatch
    from labsite.views import emails

    factory = RequestFactory()
    views = {"validate": emails.email_validate, "deferred": emails.email_deferred}
    rows = []
    for gap_s in plan["gaps_s"]:
        for i in range(plan["warmup"] + plan["count"]):
            to = f"inproc{i}@example.test"
            for kind in alternated(IN_PROCESS_KINDS, i):
                if kind == "enqueue":
                    call = partial(dispatch.enqueue_welcome_email, to)
                else:
                    call = partial(views[kind], factory.post(f"/email/{kind}/", {"to": to}))
                time.sleep(gap_s)
                began = time.perf_counter()
                call()
                elapsed = time.perf_counter() - began
                if i >= plan["warmup"]:
                    rows.append({"gap_s": gap_s, "kind": kind, "us": elapsed * 1e6})
    return rows


def time_served(plan: dict) -> list[dict]:
    """Validating and deferred POSTs to the web server, alternated, `gap_s` apart, each on a fresh connection
    (helpers.instruments.client: total time and the server's Server-Timing span)."""
    from helpers.instruments.client import RequestSpec, encode, timed_request

    host, port, rows = plan["host"], plan["port"], []
    for i in range(plan["warmup"] + plan["count"]):
        for kind in alternated(SERVED_KINDS, i):
            spec = RequestSpec(kind, f"/email/{kind}/", 1, "POST", {"to": "served{i}@example.test"})
            raw = encode(spec, i, host, port)
            time.sleep(plan["gap_s"])
            row = timed_request(host, port, raw)
            if i >= plan["warmup"]:
                rows.append({"kind": kind, "status": row["status"], "error": row["error"],
                             **{f"{name}_us": (row[f"{name}_ms"] or 0) * 1e3
                                for name in ("total", "connect", "ttfb", "server")}})
    return rows


PLANS = {"in_process": time_in_process, "served": time_served}


def run_plan(plan: dict) -> list[dict]:
    """The child's side (`python -m helpers.instruments.queue_semantics`, helpers.instruments.plan_process)."""
    return PLANS[plan.pop("mode")](plan)


def timed_in_child(lab: Lab, mode: str, **plan) -> pd.DataFrame:
    from helpers.instruments import plan_process

    return plan_process.run_plan("helpers.instruments.queue_semantics", {"mode": mode, **plan}, f"{mode} timing",
                                 env=lab.django_env(), timeout=600)


def worker_cpu_s(lab: Lab) -> float:
    """CPU seconds used so far by the lab's workers (every consumer process and its children)."""
    from helpers.instruments.cpu import cpu_seconds

    return sum(cpu_seconds(lab.processes[name].pid for name in lab.consumer_names()).values())


def enqueue_cost(lab: Lab, requests: int = 300, spaced_gap_s: float = 0.005, warmup: int = 20) -> dict:
    """What the enqueue adds to a request, in µs (p50s), with the lab's workers stopped and then running (draining
    what the measurement enqueues, as they would in production). Per state (keys prefixed `stopped_`, `running_`):

    - in_process_enqueue_p50_us, in_process_validate_p50_us, in_process_deferred_p50_us: in a child process with the
      lab's environment, no web server, calls back to back (time_in_process); in_process_spaced_*: the same calls
      `spaced_gap_s` apart, as a web worker meets them (it waits for the next request in between);
    - validate_p50_us, deferred_p50_us, difference_us (deferred minus validate), deferred_p90_us: served by the
      lab's web server to a client process, one request at a time; validate_server_p50_us, deferred_server_p50_us,
      server_difference_us: the same inside Django (its Server-Timing span);
    - difference_over_enqueue, server_difference_over_enqueue: those differences over the back-to-back in-process
      enqueue; difference_over_spaced_enqueue: over the spaced one;
    - worker_cpu_us_per_request: the workers' CPU from the first served request until the queue drained, per
      deferred request (the work an enqueue sets off on the same cores).

    Every deferred request enqueues a real welcome email: give the lab a fast SMTP server (smtp_delay_s=0)."""
    figures: dict[str, float | int] = {"requests": requests, "spaced_gap_s": spaced_gap_s}
    for state in ("stopped", "running"):
        if state == "stopped":
            lab.stop_consumer()
        else:
            lab.start_consumer()
            lab.wait_until_drained()
        timed = timed_in_child(lab, "in_process", count=requests, warmup=warmup, gaps_s=[0.0, spaced_gap_s])
        p50 = timed.groupby(["gap_s", "kind"])["us"].median()
        row = {f"{prefix}_{kind}_p50_us": p50[gap_s, kind] for kind in IN_PROCESS_KINDS
               for prefix, gap_s in (("in_process", 0.0), ("in_process_spaced", spaced_gap_s))}
        if state == "running":
            lab.wait_until_drained()  # the served requests meet only the work they set off themselves
        cpu_before = worker_cpu_s(lab)
        served = timed_in_child(lab, "served", count=requests, warmup=warmup, gap_s=0.0, host=LOOPBACK,
                                port=lab.web_port)
        if state == "running":
            lab.wait_until_drained()  # all the work the requests set off, not what ran before the last answer
        worker_cpu = worker_cpu_s(lab) - cpu_before
        failed = served[served["status"].isna() | (served["status"] >= 400)]
        if len(failed):
            raise RuntimeError(f"{len(failed)} requests failed: {failed.head().to_dict('records')}")
        for kind in SERVED_KINDS:
            rows = served[served["kind"] == kind]
            row[f"{kind}_p50_us"], row[f"{kind}_server_p50_us"] = rows["total_us"].median(), rows["server_us"].median()
        row["deferred_p90_us"] = served.loc[served["kind"] == "deferred", "total_us"].quantile(0.9)
        row["difference_us"] = row["deferred_p50_us"] - row["validate_p50_us"]
        row["server_difference_us"] = row["deferred_server_p50_us"] - row["validate_server_p50_us"]
        row["difference_over_enqueue"] = row["difference_us"] / row["in_process_enqueue_p50_us"]
        row["server_difference_over_enqueue"] = row["server_difference_us"] / row["in_process_enqueue_p50_us"]
        row["difference_over_spaced_enqueue"] = row["difference_us"] / row["in_process_spaced_enqueue_p50_us"]
        row["worker_cpu_us_per_request"] = worker_cpu * 1e6 / requests
        figures.update({f"{state}_{key}": float(value) for key, value in row.items()})
    return figures


if __name__ == "__main__":
    from helpers.instruments import plan_process

    plan_process.serve_plan(run_plan)
