"""What a queue backend does, seen from outside the site, the same way for every backend of helpers.stack.queues:
filling its queue with no-op tasks (for a drain measurement), whether a task runs before or despite the transaction
that enqueued it (labsite/views/transactions.py), and enqueues and views timed in a process of the site's own.

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


# -- timed calls in a child process with the lab's environment (helpers.protocols.enqueue_cost) ----------------

IN_PROCESS_KINDS = ("enqueue", "validate", "deferred")


def alternated(kinds: tuple[str, ...], i: int) -> tuple[str, ...]:
    """Round i's order: reversed every other round, so no kind always follows another (and its after-effects)."""
    return kinds if i % 2 == 0 else kinds[::-1]


def time_in_process(plan: dict) -> list[dict]:
    """For each gap of `gaps_s`, `count` timed calls of each of `kinds` (IN_PROCESS_KINDS unless given) after `warmup`
    untimed ones, that gap apart: the welcome email's enqueue alone (labsite.dispatch), and the validating and
    deferred views called with RequestFactory requests built beforehand (no middleware, no HTTP). The enqueues are
    real: they land in the lab's queue."""
    import django

    django.setup()
    from django.test import RequestFactory

    from labsite import dispatch
    from labsite.views import emails

    factory = RequestFactory()
    views = {"validate": emails.email_validate, "deferred": emails.email_deferred}
    kinds, rows = tuple(plan.get("kinds", IN_PROCESS_KINDS)), []
    for gap_s in plan["gaps_s"]:
        for i in range(plan["warmup"] + plan["count"]):
            to = f"inproc{i}@example.test"
            for kind in alternated(kinds, i):
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


PLANS = {"in_process": time_in_process}


def run_plan(plan: dict) -> list[dict]:
    """The child's side (`python -m helpers.instruments.queue_semantics`, helpers.instruments.plan_process)."""
    return PLANS[plan.pop("mode")](plan)


def timed_in_child(lab: Lab, mode: str, **plan) -> pd.DataFrame:
    from helpers.instruments import plan_process

    return plan_process.run_plan("helpers.instruments.queue_semantics", {"mode": mode, **plan}, f"{mode} timing",
                                 env=lab.django_env(), timeout=600)


if __name__ == "__main__":
    from helpers.instruments import plan_process

    plan_process.serve_plan(run_plan)
