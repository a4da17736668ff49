"""The job ledger (labsite/ledger.py) and the bounded backlog, through Django's test client and the real
SqliteHuey of the test settings: a job row per accepted request, its task enqueued on commit, idempotent
delivery with a stable Message-ID, retries, the reconciler, 503 + Retry-After when the queue is full. The same on
every real backend: tests/test_site_every_backend.py."""

import errno
import os
import smtplib
import time
import uuid
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from labsite import ledger
from labsite.models import EmailJob

pytestmark = pytest.mark.django_db(transaction=True)  # on_commit hooks run, as in production

REFUSING_MAILER = {"default": {"BACKEND": "django.core.mail.backends.smtp.EmailBackend",
                               "OPTIONS": {"host": "127.0.0.1", "port": 9, "timeout": 2}}}  # nothing listens


def run_queued(huey) -> list:
    """Run every queued task in this process, as a consumer would; returns their results."""
    results = []
    while (task := huey.dequeue()) is not None:
        results.append(huey.execute(task))
    return results


def test_ledger_endpoint_records_the_job_and_enqueues_it(client, huey_queue):
    response = client.post("/email/ledger/", {"to": "ada@example.test"})
    assert response.status_code == 202
    body = response.json()
    job = EmailJob.objects.get(pk=body["job_id"])
    assert (job.state, job.to, job.attempts) == ("pending", "ada@example.test", 0)
    assert body["message_id"] == job.message_id and job.id.hex in job.message_id
    assert response["Location"] == f"/jobs/{job.id}/"
    assert huey_queue.pending_count() == 1
    assert mail.outbox == []


def test_a_request_may_hold_its_transaction_open_and_a_bad_hold_is_a_400(client, huey_queue):
    """notebook 05's slow_commit: the job is committed, and its task enqueued, only once the hold is over."""
    for bad in ("2001", "-1", "0.5", "x"):
        response = client.post("/email/ledger/", {"to": "held@example.test", "hold_ms": bad})
        assert response.status_code == 400, bad
    assert (EmailJob.objects.count(), huey_queue.pending_count()) == (0, 0)
    began = time.monotonic()
    response = client.post("/email/ledger/", {"to": "held@example.test", "hold_ms": "50"})
    assert response.status_code == 202 and time.monotonic() - began >= 0.05
    assert EmailJob.objects.get(pk=response.json()["job_id"]).state == "pending"
    assert huey_queue.pending_count() == 1


def test_a_rolled_back_request_enqueues_nothing(huey_queue):
    from django.db import transaction

    with pytest.raises(RuntimeError), transaction.atomic():
        ledger.accept_email("gone@example.test")
        raise RuntimeError("the request failed after accepting")
    assert EmailJob.objects.count() == 0
    assert huey_queue.pending_count() == 0


def test_delivery_is_idempotent_and_keeps_the_message_id(client, huey_queue):
    job_id = client.post("/email/ledger/", {"to": "lin@example.test"}).json()["job_id"]
    ledger.enqueue_job(job_id)  # a second task for the same job (the reconciler's, say)
    run_queued(huey_queue)
    job = EmailJob.objects.get(pk=job_id)
    assert job.state == "delivered" and job.attempts == 1 and job.delivered_at is not None
    assert len(mail.outbox) == 1
    assert mail.outbox[0].extra_headers["Message-ID"] == job.message_id
    status = client.get(f"/jobs/{job_id}/").json()
    assert status["state"] == "delivered" and status["message_id"] == job.message_id


def test_an_smtp_error_releases_the_job_and_the_reconciler_enqueues_its_retry_when_due(client, huey_queue, settings):
    """The retry is the ledger's own (next_attempt_at, then the reconciler), not the queue's: the same on every
    backend, whichever retry machinery its library has or lacks."""
    settings.MAILERS = REFUSING_MAILER
    job_id = client.post("/email/ledger/", {"to": "retry@example.test"}).json()["job_id"]
    task = huey_queue.dequeue()
    huey_queue.execute(task)  # fails; the job waits out its backoff in the ledger, not in Huey's schedule
    job = EmailJob.objects.get(pk=job_id)
    assert (job.state, job.attempts) == ("pending", 1)
    assert job.last_error == repr(ConnectionRefusedError(errno.ECONNREFUSED, os.strerror(errno.ECONNREFUSED)))
    assert (huey_queue.scheduled_count(), huey_queue.pending_count()) == (0, 0)
    assert job.next_attempt_at > job.updated_at
    assert ledger.reconcile(job.next_attempt_at - timedelta(milliseconds=1))["retry"] == 0  # not due yet
    assert ledger.reconcile(job.next_attempt_at)["retry"] == 1
    assert ledger.reconcile(job.next_attempt_at)["retry"] == 0  # enqueued once
    settings.MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
    run_queued(huey_queue)
    job.refresh_from_db()
    assert (job.state, job.attempts, job.next_attempt_at, job.reenqueued) == ("delivered", 2, None, 0)
    assert len(mail.outbox) == 1


def test_reconciler_reenqueues_stale_and_expired_jobs_only(huey_queue):
    now = timezone.now()
    fresh = ledger.accept_email("fresh@example.test")
    stale = ledger.accept_email("stale@example.test")
    crashed = ledger.accept_email("crashed@example.test")
    huey_queue.flush()  # as if the consumer died with every task
    old = now - timedelta(seconds=ledger.LEDGER["deadline_s"] + 1)
    EmailJob.objects.filter(pk=stale.pk).update(updated_at=old)
    EmailJob.objects.filter(pk=crashed.pk).update(state="sending", attempts=1, lease_until=now - timedelta(seconds=1))
    counts = ledger.reconcile(now)
    assert counts == {"retry": 0, "pending": 1, "expired_lease": 1, "errors": 0}
    assert sorted(t.args[0] for t in huey_queue.pending()) == sorted([str(stale.pk), str(crashed.pk)])
    crashed.refresh_from_db()
    assert (crashed.state, crashed.uncertain_attempts, crashed.reenqueued) == ("pending", 1, 1)
    assert ledger.reconcile(now) == {"retry": 0, "pending": 0, "expired_lease": 0, "errors": 0}
    # (each touched: not again before the deadline)
    run_queued(huey_queue)
    assert {j.to: j.state for j in EmailJob.objects.all()} == {
        "fresh@example.test": "pending", "stale@example.test": "delivered", "crashed@example.test": "delivered"}
    assert fresh.pk not in [t.args[0] for t in huey_queue.pending()]


def test_a_job_claimed_by_a_live_lease_is_not_sent_twice(huey_queue):
    job = ledger.accept_email("busy@example.test")
    EmailJob.objects.filter(pk=job.pk).update(state="sending", attempts=1,
                                              lease_until=timezone.now() + timedelta(seconds=60))
    assert ledger.deliver_job(str(job.pk))["skipped"] is True
    assert ledger.reconcile() == {"retry": 0, "pending": 0, "expired_lease": 0, "errors": 0}
    assert mail.outbox == []


@pytest.mark.parametrize("path", ["/email/deferred/", "/email/ledger/"])
def test_a_full_backlog_sheds_with_503_and_retry_after(client, huey_queue, settings, path):
    settings.LAB_MAX_BACKLOG = 2
    assert client.post(path, {"to": "a@example.test"}).status_code == 202
    assert client.post(path, {"to": "b@example.test"}).status_code == 202
    jobs_before = EmailJob.objects.count()
    refused = client.post(path, {"to": "c@example.test"})
    assert refused.status_code == 503
    assert int(refused["Retry-After"]) >= 1
    assert refused.json()["limit"] == 2
    assert huey_queue.pending_count() == 2
    assert EmailJob.objects.count() == jobs_before
    huey_queue.dequeue()
    assert client.post(path, {"to": "d@example.test"}).status_code == 202


def test_unbounded_by_default_the_deferred_view_does_not_count_the_queue(client, huey_queue, settings):
    assert settings.LAB_MAX_BACKLOG == 0
    for i in range(5):
        assert client.post("/email/deferred/", {"to": f"u{i}@example.test"}).status_code == 202
    assert huey_queue.pending_count() == 5


def test_job_status_refuses_bad_ids(client):
    assert client.get("/jobs/not-a-uuid/").status_code == 400
    unknown = uuid.uuid4()
    assert client.get(f"/jobs/{unknown}/").json() == {"error": "unknown job id", "job_id": str(unknown)}


def test_smtp_refusal_surfaces_as_an_smtp_exception_from_the_job(settings):
    """The ledger retries on whatever the send raises; a refusal is an smtplib error, not swallowed."""
    settings.MAILERS = REFUSING_MAILER
    from labsite import jobs

    with pytest.raises((smtplib.SMTPException, OSError)):
        jobs.send_welcome_email("x@example.test", message_id="<fixed@tasks-lab.test>")


@pytest.mark.parametrize("accepted_before", [True, False])
def test_an_uncertain_job_asks_the_provider_before_sending_again(huey_queue, settings, accepted_before):
    """A worker died after its attempt may have got the 250: the provider's status API decides, so an email the
    provider already took is marked delivered, not sent twice; one it never saw is sent."""
    from helpers.stack.processes import free_port
    from helpers.stack.smtp_sink import serve_status

    job = ledger.accept_email("crash@example.test")
    huey_queue.flush()
    EmailJob.objects.filter(pk=job.pk).update(state="sending", attempts=1,
                                              lease_until=timezone.now() - timedelta(seconds=1))
    accepted = {job.message_id} if accepted_before else set()
    port = free_port()
    server = serve_status(accepted, port)
    settings.LAB_PROVIDER_STATUS_URL = f"http://127.0.0.1:{port}/messages"
    try:
        assert ledger.reconcile()["expired_lease"] == 1
        run_queued(huey_queue)
    finally:
        server.shutdown()
        server.server_close()
    job.refresh_from_db()
    assert job.state == "delivered"
    assert (job.confirmed_by_provider, len(mail.outbox)) == ((1, 0) if accepted_before else (0, 1))
    assert job.uncertain_attempts == 1


# -- issue 14: the ledger's remaining ways to lose or duplicate --------------------------------------------------

def failing_send(exc: BaseException):
    def send(*args, **kwargs):
        raise exc

    return send


@pytest.mark.parametrize(("exc", "state", "uncertain"), [
    (TimeoutError("timed out"), "pending", 1),  # after DATA, the server may have taken it
    (smtplib.SMTPServerDisconnected("Connection unexpectedly closed"), "pending", 1),
    (smtplib.SMTPDataError(451, b"try again later"), "pending", 0),  # a definite, transient refusal: it did not
    (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), "pending", 0),
    (smtplib.SMTPDataError(554, b"rejected"), "failed", 0),  # a permanent refusal: no retry changes it
    (smtplib.SMTPRecipientsRefused({"unsure@example.test": (550, b"no such user")}), "failed", 0),
])
def test_only_a_definite_refusal_is_a_certain_failure(monkeypatch, exc, state, uncertain):
    job = ledger.accept_email("unsure@example.test")
    monkeypatch.setattr(ledger.jobs, "send_welcome_email", failing_send(exc))
    with pytest.raises(type(exc)):
        ledger.deliver_job(str(job.pk))
    job.refresh_from_db()
    assert (job.state, job.attempts, job.uncertain_attempts) == (state, 1, uncertain)


def test_the_send_gets_a_deadline_in_the_first_half_of_the_lease(monkeypatch):
    monkeypatch.setitem(ledger.LEDGER, "lease_s", 3.0)
    seen = {}

    def send(to, message_id=None, deadline=None):
        seen["left_s"] = deadline - time.monotonic()
        return {"to": to}

    monkeypatch.setattr(ledger.jobs, "send_welcome_email", send)
    job = ledger.accept_email("timed@example.test")
    ledger.deliver_job(str(job.pk))
    assert 1.0 < seen["left_s"] <= ledger.FENCE * 3.0


def test_an_attempt_with_too_little_lease_left_gives_the_claim_back_unsent(monkeypatch):
    monkeypatch.setitem(ledger.LEDGER, "lease_s", ledger.MIN_SEND_S)
    monkeypatch.setattr(ledger.jobs, "send_welcome_email", failing_send(AssertionError("must not send")))
    job = ledger.accept_email("short@example.test")
    with pytest.raises(ledger.LeaseTooShort):
        ledger.deliver_job(str(job.pk))
    job.refresh_from_db()
    # the try counts towards max_attempts, though nothing was sent
    assert (job.state, job.attempts, job.uncertain_attempts, job.lease_until) == ("pending", 1, 0, None)


def test_a_send_that_outlives_its_lease_is_counted_not_silent(monkeypatch):
    job = ledger.accept_email("overrun@example.test")

    def send_while_the_reconciler_takes_the_job(to, message_id=None, deadline=None):
        EmailJob.objects.filter(pk=job.pk).update(state="pending", lease_until=None)  # the lease expired meanwhile
        return {"to": to}

    monkeypatch.setattr(ledger.jobs, "send_welcome_email", send_while_the_reconciler_takes_the_job)
    result = ledger.deliver_job(str(job.pk))
    job.refresh_from_db()
    assert result["lease_overrun"] is True
    assert (job.lease_overruns, job.state) == (1, "pending")


def test_the_reconciler_enqueues_a_retry_once_it_is_due_and_not_before(huey_queue):
    waiting = ledger.accept_email("waiting@example.test")
    left = ledger.accept_email("left@example.test")
    huey_queue.flush()
    now = timezone.now()
    old = now - timedelta(seconds=ledger.LEDGER["deadline_s"] + 1)
    EmailJob.objects.filter(pk=waiting.pk).update(updated_at=old, next_attempt_at=now + timedelta(seconds=30))
    EmailJob.objects.filter(pk=left.pk).update(updated_at=old, next_attempt_at=old)
    assert ledger.reconcile(now) == {"retry": 1, "pending": 0, "expired_lease": 0, "errors": 0}
    assert [t.args for t in huey_queue.pending()] == [(str(left.pk),)]


def test_the_reconciler_leaves_a_job_alone_while_the_queue_may_hold_its_task(huey_queue):
    """A job still pending while the queue holds tasks may just be waiting in it: a copy every deadline would grow
    the queue faster than the workers drain it (a 100-kill run reached 46,000 queued tasks). With the queue empty its
    task cannot be waiting: it is enqueued again at the deadline."""
    job = ledger.accept_email("queued@example.test")  # its task waits in the queue
    deadline = ledger.LEDGER["deadline_s"]
    now = timezone.now()
    EmailJob.objects.filter(pk=job.pk).update(updated_at=now - timedelta(seconds=deadline + 1))
    assert ledger.reconcile(now)["pending"] == 0
    assert ledger.reconcile(now + timedelta(seconds=4 * deadline))["pending"] == 0
    assert ledger.reconcile(now + timedelta(seconds=8 * deadline))["pending"] == 1  # the long deadline: 8x
    assert EmailJob.objects.get(pk=job.pk).reenqueued == 1
    # the second time, twice as long
    later = now + timedelta(seconds=8 * deadline)
    assert ledger.reconcile(later + timedelta(seconds=8 * deadline + 1))["pending"] == 0
    assert ledger.reconcile(later + timedelta(seconds=16 * deadline + 1))["pending"] == 1
    huey_queue.flush()  # every task lost, as with a killed consumer: enqueued again at the deadline
    assert ledger.reconcile(later + timedelta(seconds=17 * deadline + 2))["pending"] == 1
    assert len(huey_queue.pending()) == 1


def test_a_job_the_reconciler_cannot_enqueue_does_not_stop_the_pass(monkeypatch, huey_queue):
    jobs_ = [ledger.accept_email(f"r{i}@example.test") for i in range(3)]
    huey_queue.flush()
    now = timezone.now()
    EmailJob.objects.update(updated_at=now - timedelta(seconds=ledger.LEDGER["deadline_s"] + 1))
    enqueue = ledger.enqueue_job

    def flaky(job_id):
        if str(job_id) == str(jobs_[0].pk):
            raise OSError("the queue is down")
        return enqueue(job_id)

    monkeypatch.setattr(ledger, "enqueue_job", flaky)
    assert ledger.reconcile(now) == {"retry": 0, "pending": 2, "expired_lease": 0, "errors": 1}
    failed = EmailJob.objects.get(pk=jobs_[0].pk)
    assert (failed.enqueue_failures, failed.next_attempt_at is not None) == (1, True)  # counted, and due again
    monkeypatch.setattr(ledger, "enqueue_job", enqueue)
    assert ledger.reconcile(now + timedelta(seconds=1))["retry"] == 1  # the next pass enqueues it
    assert str(jobs_[0].pk) in [t.args[0] for t in huey_queue.pending()]


def test_the_reconcile_command_survives_a_failing_pass(monkeypatch, capsys):
    from django.core.management import call_command

    calls = []

    def failing(now=None):
        calls.append(now)
        raise OSError("database is locked")

    monkeypatch.setattr(ledger, "reconcile", failing)
    call_command("reconcile_jobs", "--once")
    assert len(calls) == 1


def test_a_retry_with_the_same_idempotency_key_gets_the_first_job(client, huey_queue):
    first = client.post("/email/ledger/", {"to": "once@example.test"}, headers={"Idempotency-Key": "signup-42"})
    again = client.post("/email/ledger/", {"to": "once@example.test"}, headers={"Idempotency-Key": "signup-42"})
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json() == first.json()
    assert EmailJob.objects.count() == 1 and huey_queue.pending_count() == 1


def test_an_idempotency_key_used_for_another_recipient_is_refused(client):
    client.post("/email/ledger/", {"to": "a@example.test"}, headers={"Idempotency-Key": "k1"})
    response = client.post("/email/ledger/", {"to": "b@example.test"}, headers={"Idempotency-Key": "k1"})
    assert response.status_code == 422
    assert response.json() == {"error": "this Idempotency-Key was used for another recipient"}
    assert EmailJob.objects.count() == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "bad key", "caf\u00e9"])
def test_a_malformed_idempotency_key_is_a_400(client, key):
    response = client.post("/email/ledger/", {"to": "a@example.test"}, headers={"Idempotency-Key": key})
    assert response.status_code == 400
    assert EmailJob.objects.count() == 0


def test_an_enqueue_that_fails_after_the_commit_still_answers_202(client, monkeypatch, huey_queue):
    monkeypatch.setattr(ledger, "enqueue_job", failing_send(OSError("the queue is down")))
    response = client.post("/email/ledger/", {"to": "later@example.test"})
    assert response.status_code == 202
    job = EmailJob.objects.get(pk=response.json()["job_id"])
    assert job.state == "pending" and huey_queue.pending_count() == 0  # the reconciler enqueues it after the deadline


# -- issue 22: the fence, permanent failures, caps, on-commit, switches --------------------------------------------

class Provider:
    """The lab's SMTP server (helpers.stack.smtp_sink's handler under aiosmtpd) and its message-status API, in this
    process, on loopback: the site's mailer and LAB_PROVIDER_STATUS_URL point at them."""

    def __init__(self, folder, settings):
        from aiosmtpd.controller import Controller

        from helpers.stack.processes import free_port
        from helpers.stack.smtp_sink import SlowRecordingHandler, serve_status

        self.control = folder / "fault.json"
        self.handler = SlowRecordingHandler(folder / "record.jsonl", 0.0, self.control)
        self.smtp = Controller(self.handler, hostname="127.0.0.1", port=free_port(), ready_timeout=10)
        self.smtp.start()
        status_port = free_port()
        self.status = serve_status(self.handler.accepted_ids, status_port)
        settings.MAILERS = {"default": {"BACKEND": "django.core.mail.backends.smtp.EmailBackend",
                                        "OPTIONS": {"host": "127.0.0.1", "port": self.smtp.port, "timeout": 30}}}
        settings.LAB_PROVIDER_STATUS_URL = f"http://127.0.0.1:{status_port}/messages"

    def fault(self, mode: str, **options) -> None:
        from helpers.stack.smtp_sink import set_fault

        set_fault(self.control, mode, **options)

    def copies(self, message_id: str) -> int:
        import json

        with open(self.handler.record.name) as record:
            return sum(json.loads(line)["message_id"] == message_id for line in record)

    def stop(self) -> None:
        self.status.shutdown()
        self.status.server_close()
        self.smtp.stop()
        self.handler.record.close()


@pytest.fixture
def provider(tmp_path, settings):
    running = Provider(tmp_path, settings)
    yield running
    running.stop()


def in_thread(target, *args) -> tuple:
    """Run `target(*args)` in a thread of its own (a second worker, with its own database connection); returns the
    thread and a dict that gets its "result" or "error" and the monotonic time it "ended"."""
    import threading

    from django.db import connection

    outcome = {}

    def run():
        try:
            outcome["result"] = target(*args)
        except Exception as exc:
            outcome["error"] = exc
        finally:
            outcome["ended"] = time.monotonic()
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_a_provider_stalling_every_command_at_40_percent_of_the_lease_gets_no_second_copy(provider, huey_queue,
                                                                                          monkeypatch):
    """Each of EHLO, MAIL, RCPT and DATA answers after 40 % of the lease: a per-operation socket timeout lets the
    exchange run past the lease, the reconciler hands the job to a second worker, the provider says "not accepted"
    (the first DATA is still in flight) and the second worker sends a second copy. The fence ends each attempt
    within half its lease: no copy ends after its lease, none is sent twice."""
    lease = 3.0  # long enough that a busy machine's claim and provider check leave the fence room to send
    monkeypatch.setitem(ledger.LEDGER, "lease_s", lease)
    monkeypatch.setitem(ledger.LEDGER, "retry_delay_s", 0.05)
    provider.fault("stall", stall_s=0.4 * lease)
    job = ledger.accept_email("stalled@example.test")
    huey_queue.flush()
    started = time.monotonic()
    first, outcome = in_thread(ledger.deliver_job, str(job.pk))
    time.sleep(lease + 0.1)  # the first worker's lease is over, whatever it is doing
    assert sum(ledger.reconcile().values()) == 1  # (an expired lease, or a retry due)
    run_queued(huey_queue)  # the second worker
    first.join(timeout=10)
    time.sleep(0.1)  # (a DATA in flight is recorded before its 250)
    job.refresh_from_db()
    assert (provider.copies(job.message_id), job.lease_overruns) == (0, 0)
    assert outcome["ended"] - started < lease  # the first attempt ended inside its lease
    assert job.uncertain_attempts == 2 and job.state == "pending"  # both timed out: asked the provider before each


def test_a_permanent_refusal_ends_the_job_failed_at_once_and_a_transient_one_is_retried(client, provider,
                                                                                         huey_queue):
    outcomes = {}
    for fault, options in [("refuse", {"code": 550}), ("refuse", {"code": 451}), ("drop", {})]:
        provider.fault(fault, **options)
        name = fault + str(options.get("code", ""))
        job_id = client.post("/email/ledger/", {"to": f"{name}@example.test"}).json()["job_id"]
        run_queued(huey_queue)
        outcomes[name] = client.get(f"/jobs/{job_id}/").json()
    failed = outcomes["refuse550"]
    assert (failed["state"], failed["attempts"], failed["next_attempt_at"]) == ("failed", 1, None)
    assert "550" in failed["last_error"]
    assert [outcomes[k]["state"] for k in ("refuse451", "drop")] == ["pending", "pending"]
    assert outcomes["drop"]["uncertain_attempts"] == 1
    assert EmailJob.objects.filter(state="failed").count() == 1
    provider.fault("ok")
    later = timezone.now() + timedelta(seconds=60)
    assert ledger.reconcile(later)["retry"] == 2  # the transient ones only
    run_queued(huey_queue)
    assert sorted(EmailJob.objects.values_list("state", flat=True)) == ["delivered", "delivered", "failed"]


def test_the_reconciler_enqueues_once_its_change_is_committed(huey_queue, monkeypatch):
    """A worker fast enough to run as the job is enqueued again reads it as the reconciler left it (pending), not
    as it was (sending, its lease expired: on WAL it would skip the job; on the tests' shared-cache SQLite it is
    locked out)."""
    job = ledger.accept_email("fast@example.test")
    huey_queue.flush()
    EmailJob.objects.filter(pk=job.pk).update(state="sending", attempts=1,
                                              lease_until=timezone.now() - timedelta(seconds=1))
    workers = []

    def enqueue_and_run_at_once(job_id):
        worker, outcome = in_thread(ledger.deliver_job, str(job_id))
        worker.join(timeout=10)
        workers.append(outcome)
        return "ran"

    monkeypatch.setattr(ledger, "enqueue_job", enqueue_and_run_at_once)
    assert ledger.reconcile()["expired_lease"] == 1
    assert workers[0].get("result", {}).get("attempt") == 2, workers  # (not skipped, nor locked out)
    job.refresh_from_db()
    assert (job.state, len(mail.outbox)) == ("delivered", 1)


def test_a_provider_check_that_keeps_failing_ends_the_job_failed(huey_queue, monkeypatch, settings):
    """A job whose last attempt's outcome is unknown asks the provider first; with its API down (a closed port),
    every try fails before the send. Each counts: the job ends failed after max_attempts, with last_error, instead
    of going round the reconciler for ever."""
    from helpers.stack.processes import free_port

    settings.LAB_PROVIDER_STATUS_URL = f"http://127.0.0.1:{free_port()}/messages"  # nothing listens
    monkeypatch.setitem(ledger.LEDGER, "max_attempts", 3)
    job = ledger.accept_email("unknown@example.test")
    huey_queue.flush()
    EmailJob.objects.filter(pk=job.pk).update(uncertain_attempts=1, updated_at=timezone.now() - timedelta(hours=1))
    later = timezone.now() + timedelta(hours=1)
    rounds = 0
    while sum(ledger.reconcile(later).values()) and rounds < 10:
        run_queued(huey_queue)
        rounds += 1
    job.refresh_from_db()
    assert (job.state, job.attempts, rounds, len(mail.outbox)) == ("failed", 3, 3, 0)
    assert "Connection refused" in job.last_error


def test_the_backoff_is_capped(monkeypatch, settings):
    settings.MAILERS = REFUSING_MAILER
    monkeypatch.setitem(ledger.LEDGER, "retry_delay_s", 0.5)
    monkeypatch.setitem(ledger.LEDGER, "retry_max_delay_s", 2.0)
    job = ledger.accept_email("capped@example.test")
    EmailJob.objects.filter(pk=job.pk).update(attempts=20)  # uncapped: 0.5 x 2^20 s, six days
    with pytest.raises(OSError):
        ledger.deliver_job(str(job.pk))
    job.refresh_from_db()
    assert job.state == "pending"
    assert timedelta(seconds=1.5) < job.next_attempt_at - job.updated_at <= timedelta(seconds=2)
    assert [ledger.retry_delay_s(n) for n in (1, 2, 3, 4, 100, 10**6)] == [0.5, 1.0, 2.0, 2.0, 2.0, 2.0]


def test_a_failed_enqueue_after_the_commit_is_logged_to_stderr_and_counted(client, monkeypatch, huey_queue, capsys):
    """Django logs what a robust on-commit hook raised to `django.db.backends.base`, whose only handlers (Django's
    defaults) drop it with DEBUG off: the ledger logs it to `labsite.ledger`, whose handler writes to stderr (the
    process's log), and counts it."""
    import logging
    import sys

    to_stderr = [h for h in logging.getLogger("labsite").handlers if type(h) is logging.StreamHandler]
    assert to_stderr and logging.getLogger("labsite.ledger").getEffectiveLevel() <= logging.ERROR
    for handler in to_stderr:  # pytest swapped sys.stderr after logging was configured: write to the one it reads
        monkeypatch.setattr(handler, "stream", sys.stderr)
    monkeypatch.setattr(ledger, "enqueue_job", failing_send(OSError("the queue is down")))
    job_id = client.post("/email/ledger/", {"to": "logged@example.test"}).json()["job_id"]
    err = capsys.readouterr().err
    assert f"job {job_id}: could not enqueue its task" in err and "OSError: the queue is down" in err
    job = EmailJob.objects.get(pk=job_id)
    assert (job.state, job.enqueue_failures) == ("pending", 1)
    assert client.get(f"/jobs/{job_id}/").json()["enqueue_failures"] == 1
    monkeypatch.undo()
    assert ledger.reconcile()["retry"] == 1  # due at once: the reconciler's next pass enqueues it
    assert huey_queue.pending_count() == 1


# -- the mechanism switches (LAB_LEDGER_*: mutation tests) each disable their mechanism -------------------------

def test_the_switches_come_from_the_environment_and_are_on_by_default(monkeypatch):
    from labsite import settings as site_settings

    for switch in site_settings.LEDGER_SWITCHES:
        monkeypatch.delenv(f"LAB_LEDGER_{switch.upper()}", raising=False)
    assert [site_settings.ledger_settings()[s] for s in site_settings.LEDGER_SWITCHES] == [True] * 4
    monkeypatch.setenv("LAB_LEDGER_PROVIDER_CHECK", "0")
    monkeypatch.setenv("LAB_LEDGER_ON_COMMIT", "0")
    assert {s: site_settings.ledger_settings()[s] for s in site_settings.LEDGER_SWITCHES} == {
        "provider_check": False, "retries": True, "reconciler": True, "on_commit": False}


def test_with_the_provider_check_off_an_uncertain_job_is_sent_again(provider, huey_queue, monkeypatch, settings):
    job = ledger.accept_email("twice@example.test")
    huey_queue.flush()
    provider.handler.accepted_ids.add(job.message_id)  # its first attempt got its 250 and died before the commit
    EmailJob.objects.filter(pk=job.pk).update(uncertain_attempts=1)
    settings.MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
    monkeypatch.setitem(ledger.LEDGER, "provider_check", False)
    assert "confirmed_by_provider" not in ledger.deliver_job(str(job.pk))
    assert len(mail.outbox) == 1
    monkeypatch.setitem(ledger.LEDGER, "provider_check", True)
    again = ledger.accept_email("once@example.test")
    provider.handler.accepted_ids.add(again.message_id)
    EmailJob.objects.filter(pk=again.pk).update(uncertain_attempts=1)
    assert ledger.deliver_job(str(again.pk))["confirmed_by_provider"] is True
    assert len(mail.outbox) == 1


def test_with_retries_off_a_transient_failure_ends_the_job_failed(monkeypatch, settings):
    settings.MAILERS = REFUSING_MAILER
    monkeypatch.setitem(ledger.LEDGER, "retries", False)
    job = ledger.accept_email("noretry@example.test")
    with pytest.raises(OSError):
        ledger.deliver_job(str(job.pk))
    job.refresh_from_db()
    assert (job.state, job.next_attempt_at) == ("failed", None)


def test_with_the_reconciler_off_nothing_is_enqueued_again(huey_queue, monkeypatch):
    job = ledger.accept_email("left@example.test")
    huey_queue.flush()
    EmailJob.objects.filter(pk=job.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    monkeypatch.setitem(ledger.LEDGER, "reconciler", False)
    assert sum(ledger.reconcile().values()) == 0 and huey_queue.pending_count() == 0
    monkeypatch.setitem(ledger.LEDGER, "reconciler", True)
    assert ledger.reconcile()["pending"] == 1 and huey_queue.pending_count() == 1


def test_with_on_commit_off_the_task_is_enqueued_inside_the_transaction(huey_queue, monkeypatch):
    from django.db import transaction

    monkeypatch.setitem(ledger.LEDGER, "on_commit", False)
    with pytest.raises(RuntimeError), transaction.atomic():
        ledger.accept_email("rolled-back@example.test")
        raise RuntimeError("the request failed after accepting")
    assert (EmailJob.objects.count(), huey_queue.pending_count()) == (0, 1)  # a task for a job that never was


def test_a_lab_switches_a_mechanism_off_for_its_own_run(tmp_path):
    from helpers.stack import Lab
    from helpers.stack.lab import LabConfig

    env = Lab(run_dir=tmp_path / "run", ledger_off=("retries", "on_commit"))._env()
    assert {k: v for k, v in env.items() if k.startswith("LAB_LEDGER_") and v == "0"} == {
        "LAB_LEDGER_RETRIES": "0", "LAB_LEDGER_ON_COMMIT": "0"}
    assert not any(k.startswith("LAB_LEDGER_") and v == "0" for k, v in Lab(run_dir=tmp_path / "b")._env().items())
    with pytest.raises(ValueError, match="fence"):
        LabConfig(ledger_off=("fence",))
