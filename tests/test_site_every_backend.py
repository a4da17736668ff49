"""Every deferred path of the site on every queue backend with workers, on the real stack: the work is done (the email
reaches the SMTP server, the thumbnail is made, the ledger's job is delivered), the status endpoint knows the task,
and the bounded backlog sheds with 503 + Retry-After on every deferred endpoint once the workers are stopped. On two
of them (RECOVERY_CASES), a task whose worker was SIGKILLed mid-send runs again exactly as the backend declares.

One lab per backend (module-scoped), in a private rerun folder as `python -m helpers run` makes one (deep: a unix
socket's path could not be), the shedding checked last in it, then its stop: its files private, nothing of it left
running or listening. Parametrized over tests/stack_backends.py's on_the_stack(): every backend in full mode, so a
backend added later is tested the moment its module exists; quick mode adds to notebook 07's matrix a subset of those
it does not measure yet."""

import io
import json
import time
from http.cookies import SimpleCookie
from types import SimpleNamespace

import psutil
import pytest
from PIL import Image

from helpers import runs
from helpers.instruments.hostile import multipart
from helpers.instruments.ledger import LEDGER_STATES
from helpers.protocols import recovery
from helpers.stack import Lab
from helpers.stack.lab import LabConfig
from helpers.stack.processes import LOOPBACK, port_is_bound
from helpers.stack.queues import backend_class
from tests.stack_backends import not_private, on_the_stack

pytestmark = pytest.mark.stack

WAIT_S = 30.0  # for one task to be done, on two cores shared with the other tests
# Django's own ORM, under the site's settings, finds the ledger's job where the lab's reader does: on one SQLite and
# one PostgreSQL site database (a management command costs a Django start)
ORM_CROSS_CHECK = ("huey_sqlite", "djtasks_db_postgres")
DEFERRED_ENDPOINTS = ["/email/deferred/", "/email/ledger/", "/thumbnails/deferred/", "/signup/deferred/"]
# A killed worker's task: lost for good (at-most-once), and handed to the restarted worker at once (redelivery 0 s)
RECOVERY_CASES = ("huey_sqlite", "dramatiq_rabbitmq")


def has_workers(name: str) -> bool:
    return backend_class(name)(SimpleNamespace(config=LabConfig())).worker_argv() is not None


WORKER_BACKENDS = [name for name in on_the_stack() if has_workers(name)]


@pytest.fixture(scope="module", params=WORKER_BACKENDS)
def lab(request):
    """The site on one backend, its reconciler running, its backlog bounded at one task (each check below waits for
    its task, so only the last one, with the workers stopped, finds a task waiting)."""
    backend = request.param
    with pytest.MonkeyPatch.context() as env:
        rerun = runs.runs_root() / f"20261125T230243-rerun-{backend}"
        (rerun / "experiments").mkdir(parents=True, mode=0o700)
        env.setenv("LAB_RUNS_AREA", str(runs.runs_area()))
        env.setenv("LAB_RUNS_DIR", str(rerun / "experiments"))
        lab = Lab(queue_backend=backend, web_workers=1, consumer_workers=1, smtp_delay_s=0, ledger=True,
                  max_backlog=1, run_dir=runs.new_run_dir("07-which-queue") / backend,
                  **backend_class(backend).tuned_worker_config).start()
        yield lab
        lab.stop()


def body(response) -> dict:
    return json.loads(response.body)


def wait_until(read, done, what: str, timeout_s: float = WAIT_S):
    """Poll `read()` until `done(value)`; returns the value, or fails saying the last one."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: still {value!r} after {timeout_s} s")
        time.sleep(0.05)


def recipients(lab) -> list[str]:
    deliveries = lab.mail.deliveries()
    return [rcpt for rcpts in deliveries["rcpt_tos"] for rcpt in rcpts] if len(deliveries) else []


def wait_for_email_to(lab, to: str) -> None:
    wait_until(lambda: recipients(lab).count(to), lambda n: n >= 1, f"emails to {to}")


def png_upload() -> tuple[bytes, str]:
    """A small PNG as a multipart body, and its content type."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 80, 40)).save(buffer, "PNG")
    boundary = "every-backend"
    return (multipart({}, {"image": ("small.png", "image/png", buffer.getvalue())}, boundary),
            f"multipart/form-data; boundary={boundary}")


def post_upload(lab):
    data, content_type = png_upload()
    return lab.http.request("POST", "/thumbnails/deferred/", body=data, headers={"Content-Type": content_type})


def post_signup(lab, to: str):
    """The sign-up page's deferred form, as its fetch() sends it: the page's CSRF cookie and token, JSON asked for."""
    page = lab.http.get("/signup/")
    token = SimpleCookie(page.getheader("Set-Cookie"))["csrftoken"].value
    return lab.http.request("POST", "/signup/deferred/", body=f"to={to}", headers={
        "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json",
        "Cookie": f"csrftoken={token}", "X-CSRFToken": token})


def known_state(lab, response) -> dict:
    """The task's state where the 202's Location points: delivered once its work is done, or, on a queue that keeps
    no states (Celery without a result backend), its honest 404."""
    location = response.getheader("Location")
    assert location == f"/tasks/{body(response)['task_id']}/"

    def read():
        answer = lab.http.get(location)
        return answer.status, body(answer)

    status, state = wait_until(read, lambda s: s[0] == 404 or s[1].get("state") in ("delivered", "failed"),
                               f"the state at {location}")
    if status == 404:
        assert state["error"].startswith("this queue keeps no results"), state
    else:
        assert state["state"] == "delivered", state
    return state


def test_a_deferred_email_is_sent_and_its_state_known(lab):
    to = f"deferred-{lab.queue.name}@example.test"
    response = lab.http.post("/email/deferred/", {"to": to})
    assert response.status == 202, response.body
    wait_for_email_to(lab, to)
    known_state(lab, response)


def test_a_ledger_job_is_delivered(lab):
    to = f"ledger-{lab.queue.name}@example.test"
    response = lab.http.post("/email/ledger/", {"to": to})
    assert response.status == 202, response.body
    location = response.getheader("Location")
    job = wait_until(lambda: body(lab.http.get(location)), lambda j: j["state"] == "delivered",
                     f"the job at {location}")
    assert (job["attempts"], job["uncertain_attempts"]) == (1, 0)
    assert recipients(lab).count(to) == 1
    # the lab's reader finds it in the database the site's settings use: on PostgreSQL, the run folder's SQLite
    # file is never made
    jobs = lab.ledger.jobs("ledger-%")
    assert jobs["jobs"] == 1 and jobs["delivered"] == 1 and sum(jobs[state] for state in LEDGER_STATES) == 1
    assert lab.ledger.jobs("nobody-%")["jobs"] == 0
    on_postgres = lab.ledger.database.location.startswith("postgresql://")
    assert (lab.run_dir / "site.sqlite3").exists() != on_postgres
    if lab.queue.name in ORM_CROSS_CHECK:
        orm = lab.manage("shell", "-c", "from labsite.models import EmailJob; "
                                        "print(EmailJob.objects.filter(to__startswith='ledger-').count())")
        assert (orm.stdout.split()[-1], on_postgres) == ("1", lab.queue.name == "djtasks_db_postgres")


def test_a_deferred_thumbnail_is_made(lab):
    folder = lab.run_dir / "thumbnails"
    before = set(folder.glob("*.jpg")) if folder.exists() else set()
    response = post_upload(lab)
    assert response.status == 202, response.body
    made = wait_until(lambda: set(folder.glob("*.jpg")) - before if folder.exists() else set(), bool,
                      "a new thumbnail")
    state = known_state(lab, response)
    if "result" in state:
        assert {state["result"]["thumbnail"]} == {path.name for path in made}
    assert list((lab.run_dir / "uploads").iterdir()) == []  # the job consumed its upload


def test_a_deferred_signup_sends_its_email(lab):
    to = f"signup-{lab.queue.name}@example.test"
    response = post_signup(lab, to)
    assert response.status == 202, response.body
    wait_for_email_to(lab, to)
    known_state(lab, response)


def test_a_killed_workers_task_runs_again_only_where_the_backend_declares_redelivery(lab):
    """Without the kill the send would finish: the at-most-once case would see its copy, the redelivered one no copy
    from a send begun after the kill (recovery_s None)."""
    if lab.queue.name not in RECOVERY_CASES:
        pytest.skip(f"recovery is checked on {', '.join(RECOVERY_CASES)}")
    found = recovery.after_kill(lab, held_s=0.5, never_wait_s=1.5)
    assert found["held_by_killed_worker"], found
    if lab.queue.redelivery_after_s is None:
        assert (found["recovery_s"], found["copies"]) == (None, 0), found
    else:
        assert found["recovery_s"] is not None and 0 < found["recovery_s"] <= found["bound_s"], found
        assert found["copies"] == 1, found


def test_with_the_workers_stopped_every_deferred_endpoint_sheds_at_the_bound(lab):
    """Last on this lab: it stops the workers."""
    lab.stop_consumer()
    assert lab.http.post("/email/deferred/", {"to": "fills@example.test"}).status == 202  # one task waits: the bound
    wait_until(lab.queue_depth, lambda depth: depth == 1, "the queue depth")
    refusals = {"/email/deferred/": lab.http.post("/email/deferred/", {"to": "shed@example.test"}),
                "/email/ledger/": lab.http.post("/email/ledger/", {"to": "shed@example.test"}),
                "/thumbnails/deferred/": post_upload(lab),
                "/signup/deferred/": post_signup(lab, "shed@example.test")}
    assert set(refusals) == set(DEFERRED_ENDPOINTS)
    for endpoint, response in refusals.items():
        assert (endpoint, response.status) == (endpoint, 503), response.body
        assert int(response.getheader("Retry-After")) >= 1
        assert (body(response)["backlog"], body(response)["limit"]) == (1, 1)
    assert lab.queue_depth() == 1  # nothing shed was enqueued (no ledger row either: tests/test_ledger.py)
    assert list((lab.run_dir / "uploads").iterdir()) == []  # nor spooled


def test_the_lab_stops_and_leaves_nothing_running_or_listening(lab):
    """Last on this lab: it stops it. Every server listened on loopback alone (IPv4, and IPv6 where a server adds it:
    Erlang's epmd, beside RabbitMQ, always does); once stopped, no process of the lab (a server's daemon among them)
    runs and none of its ports is bound."""
    listening = lab.listening_sockets()
    assert listening and set(listening.values()) <= {LOOPBACK, "::1"}, listening
    assert not_private(lab.run_dir) == []
    processes = [psutil.Process(pid) for pid in lab.pids()]
    lab.stop()
    assert [p.pid for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []
    assert [port for port in listening if port_is_bound(port)] == []
