"""The recipe to copy (docs/recipe/outbox) on the real stack: installed as the only app of a small site
(tests/recipe_settings.py) with a real SMTP server on loopback (helpers.stack.smtp_sink), gunicorn serving its view
and django-tasks-db's `db_worker`, a worker that loses the task it runs when it is killed (its row stays RUNNING).
The worker is SIGKILLed mid-task, restarted, and the recipe's reconciler brings back what the kills took: every
recipient gets its email, a second copy only with the job's own Message-ID and never more copies than kills.

RECIPE_MUTANT=no_reconciler (the reconciler's body removed), no_fence (the deadline's re-arming removed: each SMTP
command gets the whole time left at connect) or no_on_commit (the task enqueued inside the request's transaction) runs
the same test on a broken copy of the recipe: the first two must fail (killed jobs lost; a stalled send finished
past its deadline). The third passes on this backend, whose task row commits with the request's transaction."""

from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from helpers import REPO_ROOT
from helpers.instruments.site_client import SiteClient
from helpers.instruments.smtp_record import SmtpRecord
from helpers.stack.processes import LOOPBACK, SERVER_ENVIRONMENT, ManagedProcess, start_on_port
from helpers.stack.smtp_sink import set_fault

RECIPE = REPO_ROOT / "docs" / "recipe" / "outbox"
SETTINGS = "tests.recipe_settings"  # in every command line: tests/conftest.py finds a process left behind by it
LEASE_S = 2.0  # the send's deadline is half of it; a killed worker's job is enqueued again once it expired
RECONCILE_EVERY_S = 0.2
MUTANTS = {  # what each mutation replaces in the copy of the recipe (a missing pattern fails the test)
    "no_reconciler": ("tasks.py", r'(def reconcile\(\):\n    """[^\n]*"""\n)', r"\1    return\n"),
    "no_fence": ("tasks.py", r"        self\.sock\.settimeout\([^\n]*\n", ""),
    "no_on_commit": ("views.py", r"transaction\.on_commit\(partial\(send_email\.enqueue, job\.pk\), robust=True\)",
                     "send_email.enqueue(job.pk)"),
}


def code_lines(path: Path) -> list[str]:
    """The lines of code of a module: not blank, not an import."""
    return [line for line in path.read_text().splitlines()
            if line.strip() and not re.match(r"\s*(import|from \S+ import) ", line)]


def test_the_recipe_is_40_to_80_lines_of_plain_django():
    modules = sorted(RECIPE.rglob("*.py"))
    assert {p.name for p in modules} == {"__init__.py", "models.py", "tasks.py", "views.py"}
    assert 40 <= sum(len(code_lines(p)) for p in modules) <= 80
    for path in modules:
        source = path.read_text()
        imported = {alias.name for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {node.module or "" for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)
                     and not node.level}
        assert all(name.split(".")[0] in {"django", "smtplib", "time", "contextlib", "datetime", "functools", "uuid"}
                   for name in imported), (path.name, imported)
        assert "LAB_" not in source and "labsite" not in source and "helpers" not in source, path.name


class RecipeSite:
    """The recipe's site, its servers and workers each a process of its own, logging into `folder`."""

    def __init__(self, folder: Path, mutant: str | None = None):
        self.folder = folder
        shutil.copytree(RECIPE, folder / "app" / "outbox")
        if mutant:
            name, pattern, replacement = MUTANTS[mutant]
            module = folder / "app" / "outbox" / name
            changed, count = re.subn(pattern, replacement, module.read_text())
            assert count, f"mutant {mutant}: its pattern is not in {name}"
            module.write_text(changed)
        self.db = folder / "site.sqlite3"
        self.control = folder / "smtp-fault.json"
        self.mail = SmtpRecord(folder / "smtp-deliveries.jsonl", running=self.running)
        self.processes: dict[str, ManagedProcess] = {}
        self.smtp_port = self.web_port = 0

    def env(self) -> dict[str, str]:
        return {"PYTHONPATH": os.pathsep.join([str(self.folder / "app"), str(REPO_ROOT)]),
                "DJANGO_SETTINGS_MODULE": SETTINGS, "RECIPE_DB": str(self.db), "RECIPE_SMTP_PORT": str(self.smtp_port),
                "RECIPE_LEASE_S": str(LEASE_S)}

    def spawn(self, name: str, argv: list, **kwargs) -> ManagedProcess:
        env = kwargs.pop("env", self.env())
        process = ManagedProcess(name, argv, self.folder / f"{name}.log", env=env, cwd=REPO_ROOT, **kwargs).start()
        self.processes[name] = process
        return process

    def django(self, *args) -> list:
        return [sys.executable, "-m", "django", *args, f"--settings={SETTINGS}"]

    def start_smtp(self, port: int) -> None:
        self.smtp_port = port
        smtp = self.spawn("smtp", [sys.executable, "-m", "helpers.stack.smtp_sink", "--port", port, "--delay", 0.1,
                                   "--record", self.mail.path, "--control", self.control],
                          env=None, keep_env=SERVER_ENVIRONMENT)
        smtp.wait_until(lambda: smtp.listens_on(port), what="listening for SMTP")

    def start_web(self, port: int) -> None:
        self.web_port = port
        web = self.spawn("web", [sys.executable, "-m", "gunicorn", "django.core.wsgi:get_wsgi_application()",
                                 "--env", f"DJANGO_SETTINGS_MODULE={SETTINGS}", "--bind", f"{LOOPBACK}:{port}",
                                 "--workers", 2, "--log-level", "warning"])
        web.wait_until(lambda: web.listens_on(port) and len(web.descendants()) == 2, what="serving")

    def start_worker(self) -> ManagedProcess:
        return self.spawn("worker", self.django("db_worker", "--no-startup-delay", "--no-reload", "--interval", 0.02))

    def start_reconciler(self) -> None:
        """The reconciler as cron would run it, in a loop (`manage.py shell -c`, the recipe has no command)."""
        loop = f"import time\nfrom outbox.tasks import reconcile\nwhile True:\n    reconcile()\n" \
               f"    time.sleep({RECONCILE_EVERY_S})"
        self.spawn("reconciler", self.django("shell", "-c", loop))

    def __enter__(self) -> RecipeSite:
        try:
            start_on_port(self.start_smtp)
            subprocess.run(self.django("migrate", "--run-syncdb", "-v", "0"), env={**os.environ, **self.env()},
                           cwd=REPO_ROOT, check=True, timeout=60)
            start_on_port(self.start_web)
            self.start_worker()
            self.start_reconciler()
        except BaseException:
            self.stop()
            raise
        self.http = SiteClient(f"http://{LOOPBACK}:{self.web_port}")
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def stop(self) -> None:
        for process in reversed(self.processes.values()):
            process.stop()

    def running(self) -> bool:
        return all(p.alive() for name, p in self.processes.items() if name != "worker")

    def post(self, to: str, key: str | None = None) -> tuple[int, dict]:
        response = self.http.request("POST", "/email/", f"to={to}", timeout=30, headers={
            "Content-Type": "application/x-www-form-urlencoded", **({"Idempotency-Key": key} if key else {})})
        return response.status, json.loads(response.body)

    def query(self, sql: str) -> list[tuple]:
        with contextlib.closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=20)) as conn:
            return conn.execute(sql).fetchall()

    def jobs(self) -> dict[str, dict]:
        """Every job, by recipient."""
        rows = self.query('select "to", state, attempts, message_id, last_error from outbox_emailjob')
        return {to: {"state": s, "attempts": a, "message_id": m, "last_error": e} for to, s, a, m, e in rows}

    def copies(self) -> dict[str, list[str]]:
        """The Message-IDs the SMTP server accepted, by recipient."""
        copies: dict[str, list[str]] = {}
        for row in self.mail.deliveries().itertuples():
            copies.setdefault(row.rcpt_tos[0], []).append(row.message_id)
        return copies


def wait_for(condition, timeout: float, what: str, site: RecipeSite) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert site.running(), f"a process of the recipe's site died while waiting for {what}"
        assert time.monotonic() < deadline, f"no {what} after {timeout} s: {site.jobs()}"
        time.sleep(0.02)


def kill_mid_task(site: RecipeSite, caught: set[int]) -> bool | None:
    """SIGKILL the worker while a job is being sent (not one an earlier kill left claimed: `caught`), then start a
    new one; True when the kill left that job claimed (`sending`), its task gone with the worker; None when no job
    was being sent for 5 s (all done)."""
    deadline = time.monotonic() + 5
    while not (sending := {pk for pk, in site.query("select id from outbox_emailjob where state = 'sending'")}
               - caught):
        if time.monotonic() > deadline:
            return None
        time.sleep(0.005)
    site.processes["worker"].kill()
    pk = sending.pop()
    hit = bool(site.query(f"select id from outbox_emailjob where state = 'sending' and id = {pk}"))
    site.start_worker()
    if hit:
        caught.add(pk)
    return hit


def settle(site: RecipeSite, timeout: float) -> bool:
    """Wait until no job is pending or being sent, for at most `timeout` s after the last change."""
    last, changed = None, time.monotonic()
    while time.monotonic() - changed < timeout:
        states = Counter(job["state"] for job in site.jobs().values())
        if not states["pending"] + states["sending"]:
            return True
        if states != last:
            last, changed = states, time.monotonic()
        assert site.running(), "a process of the recipe's site died while it settled"
        time.sleep(0.1)
    return False


@pytest.mark.stack
def test_the_recipe_loses_nothing_when_its_worker_is_killed_mid_task(tmp_path):
    requested, hits_wanted = 24, 2
    with RecipeSite(tmp_path, os.environ.get("RECIPE_MUTANT")) as site:
        started = time.monotonic()
        for n in range(requested):
            assert site.post(f"n{n}@example.test")[0] == 202
        kills, caught = 0, set()
        while len(caught) < hits_wanted and kills < 3 * hits_wanted and kill_mid_task(site, caught) is not None:
            kills += 1
        hits, settled = len(caught), settle(site, timeout=3 * LEASE_S)
        settle_s = time.monotonic() - started
        stuck_tasks = site.query("select count(*) from django_tasks_database_dbtaskresult where status = 'RUNNING'")
        jobs, copies = site.jobs(), site.copies()

        # per message: every recipient got its email; a second copy only with its job's Message-ID, one per kill at most
        ours = [f"n{n}@example.test" for n in range(requested)]
        lost = [to for to in ours if not copies.get(to)]
        not_sent = {to: jobs[to]["state"] for to in ours if jobs[to]["state"] != "sent"}
        foreign = {to: copies[to] for to in ours if set(copies.get(to, [])) - {jobs[to]["message_id"]}}
        duplicated = sum(len(copies.get(to, [])) - 1 for to in ours if copies.get(to))
        print(f"\nrecipe: {requested} requested, {requested - len(lost)} delivered, {len(lost)} lost, {duplicated} "
              f"duplicated; {kills} kills, {hits} mid-send; settled {settled} in {settle_s:.1f} s")
        assert not lost and not not_sent, f"lost {lost}; not sent {not_sent} ({hits} jobs caught mid-send)"
        assert not foreign, f"copies with another Message-ID than their job's: {foreign}"
        assert duplicated <= kills, f"{duplicated} duplicates from {kills} kills"
        assert settled
        assert hits >= 1, f"no kill of {kills} caught a job mid-send: nothing was at stake"
        assert stuck_tasks[0][0] >= hits  # the queue itself kept none of the killed tasks: the reconciler did

        # a permanent refusal (550) ends the job failed at its first attempt; a 451 is retried after its backoff
        set_fault(site.control, "refuse", 550)
        assert site.post("refused@example.test")[0] == 202
        wait_for(lambda: site.jobs()["refused@example.test"]["state"] == "failed", 10, "failed job", site)
        set_fault(site.control, "refuse", 451)
        assert site.post("retried@example.test")[0] == 202
        wait_for(lambda: "451" in site.jobs()["retried@example.test"]["last_error"], 10, "refused attempt", site)
        set_fault(site.control, "ok")
        wait_for(lambda: site.jobs()["retried@example.test"]["state"] == "sent", 10, "retried job sent", site)
        # the send's overall deadline (half the lease): four replies held 0.4 s each end the attempt, unsent
        set_fault(site.control, "stall", stall_s=0.4 * LEASE_S / 2)
        assert site.post("stalled@example.test")[0] == 202
        wait_for(lambda: site.jobs()["stalled@example.test"]["last_error"] or site.jobs()["stalled@example.test"][
            "state"] == "sent", 10, "first attempt's end", site)
        assert "timed out" in site.jobs()["stalled@example.test"]["last_error"], "sent past the deadline"
        assert "stalled@example.test" not in site.copies()
        set_fault(site.control, "ok")
        wait_for(lambda: site.jobs()["stalled@example.test"]["state"] == "sent", 10, "stalled job sent", site)
        # bad input: a clear 400, nothing written
        assert site.post("not-an-address")[0] == 400
        assert site.post("long@example.test", "k" * 256)[0] == 400
        # the Idempotency-Key: a retried request gets the first job, another recipient under that key a 422
        (status, first), (again, second) = (site.post("same@example.test", "key-1") for _ in range(2))
        assert (status, again, second["job"], second["message_id"]) == (202, 202, first["job"], first["message_id"])
        assert site.post("other@example.test", "key-1")[0] == 422
        wait_for(lambda: site.jobs()["same@example.test"]["state"] == "sent", 10, "keyed job sent", site)
        jobs, copies = site.jobs(), site.copies()

    assert (jobs["refused@example.test"]["state"], jobs["refused@example.test"]["attempts"]) == ("failed", 1)
    assert "refused@example.test" not in copies
    for to in ("retried@example.test", "stalled@example.test", "same@example.test"):  # once, with its Message-ID
        assert copies[to] == [jobs[to]["message_id"]], to
    assert jobs["retried@example.test"]["attempts"] >= 2 and jobs["stalled@example.test"]["attempts"] >= 2
    assert set(copies) <= set(jobs), "an email to a recipient no job names"
