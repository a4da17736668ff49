"""The site's endpoints through Django's test client: behaviour and refusals, no servers needed."""

import errno
import os
import time
import uuid

import hypothesis
import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.core.mail.backends.smtp import EmailBackend
from django.core.validators import validate_email
from hypothesis import strategies as st

from labsite import jobs, tasks
from labsite.models import EmailJob

# What smtplib raises when nothing listens on the port (the discard port, 9), as Huey records it: repr(exc).
CONNECTION_REFUSED = repr(ConnectionRefusedError(errno.ECONNREFUSED, os.strerror(errno.ECONNREFUSED)))

BAD_ADDRESSES = [
    {},
    {"to": ""},
    {"to": "not-an-address"},
    {"to": "a@b.test\r\nBcc: victim@example.test"},
    {"to": "x" * 250 + "@example.test"},
    {"to": ["a@example.test", "b@example.test"]},
]


def test_settings_point_at_the_test_scratch_folder(settings):
    assert settings.RUN_DIR.is_dir()
    assert settings.HUEY["filename"].startswith(str(settings.RUN_DIR))  # the queue lives in the scratch folder
    assert "tasks-lab-tests-" in str(settings.RUN_DIR)
    assert settings.DEBUG is False


def test_noop_answers_json_with_server_timing(client):
    response = client.get("/noop/")
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    assert response["Server-Timing"].startswith("app;dur=")


@pytest.mark.parametrize("path,method", [("/noop/", "post"), ("/email/blocking/", "get"),
                                         ("/email/deferred/", "get"), ("/email/deferred/", "put"),
                                         ("/tasks/7a542c63-49d4-4c4a-80f4-63e471220363/", "post")])
def test_wrong_method_is_a_json_405(client, path, method):
    response = getattr(client, method)(path)
    assert response.status_code == 405
    assert "not allowed" in response.json()["error"]
    assert response["Allow"]


def test_unknown_path_is_a_json_404(client):
    response = client.get("/nowhere/")
    assert response.status_code == 404
    assert response.json() == {"error": "no such endpoint"}


def test_blocking_sends_the_email_before_answering(client):
    response = client.post("/email/blocking/", {"to": "ada@example.test"})
    assert response.status_code == 200
    body = response.json()
    assert body["state"] == "delivered"
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["ada@example.test"]
    assert mail.outbox[0].extra_headers["Message-ID"] == body["result"]["message_id"]


@pytest.mark.parametrize("form", BAD_ADDRESSES)
@pytest.mark.parametrize("path", ["/email/blocking/", "/email/deferred/"])
def test_bad_address_is_a_400_and_nothing_is_sent_or_queued(client, huey_queue, path, form):
    response = client.post(path, form)
    assert response.status_code == 400
    assert "error" in response.json()
    assert mail.outbox == []
    assert huey_queue.pending_count() == 0


def test_deferred_enqueues_and_answers_202_without_sending(client, huey_queue):
    response = client.post("/email/deferred/", {"to": "grace@example.test"})
    assert response.status_code == 202
    task_id = response.json()["task_id"]
    assert response["Location"] == f"/tasks/{task_id}/"
    assert mail.outbox == []
    assert [t.id for t in huey_queue.pending()] == [task_id]


def test_deferred_task_runs_the_same_job_as_the_blocking_view(client, huey_queue):
    client.post("/email/blocking/", {"to": "same@example.test"})
    task_id = client.post("/email/deferred/", {"to": "same@example.test"}).json()["task_id"]
    task = huey_queue.dequeue()
    assert task.id == task_id
    huey_queue.execute(task)
    blocking, deferred = mail.outbox
    assert (blocking.subject, blocking.body, blocking.to) == (deferred.subject, deferred.body, deferred.to)
    assert blocking.subject == jobs.WELCOME_SUBJECT


def test_task_status_follows_a_task_from_queued_to_delivered(client, huey_queue):
    task_id = client.post("/email/deferred/", {"to": "lin@example.test"}).json()["task_id"]
    assert client.get(f"/tasks/{task_id}/").json()["state"] == "queued"
    huey_queue.execute(huey_queue.dequeue())
    status = client.get(f"/tasks/{task_id}/").json()
    assert status["state"] == "delivered"
    assert status["result"]["to"] == "lin@example.test"
    assert status["result"]["message_id"] == mail.outbox[0].extra_headers["Message-ID"]
    assert status["started_at"] is not None


def test_task_status_reports_a_failed_send(client, huey_queue, settings):
    settings.MAILERS = {"default": {"BACKEND": "django.core.mail.backends.smtp.EmailBackend",
                                    # the discard port: nothing listens, the connection is refused
                                    "OPTIONS": {"host": "127.0.0.1", "port": 9, "timeout": 2}}}
    task_id = client.post("/email/deferred/", {"to": "fail@example.test"}).json()["task_id"]
    huey_queue.execute(huey_queue.dequeue())
    status = client.get(f"/tasks/{task_id}/").json()
    assert status == {"task_id": task_id, "state": "failed", "error": CONNECTION_REFUSED,
                      "started_at": status["started_at"]}
    assert isinstance(status["started_at"], float)


def test_task_status_refuses_a_malformed_id(client):
    response = client.get("/tasks/not-a-uuid/")
    assert response.status_code == 400
    assert response.json()["error"] == "task id must be a UUID"


def test_task_status_of_an_unknown_id_is_404(client, huey_queue):
    unknown = str(uuid.uuid4())
    response = client.get(f"/tasks/{unknown}/")
    assert response.status_code == 404
    assert response.json() == {"error": "unknown task id", "task_id": unknown}


def test_running_marker_is_what_the_consumer_leaves_on_start(client, huey_queue):
    task_id = client.post("/email/deferred/", {"to": "run@example.test"}).json()["task_id"]
    task = huey_queue.dequeue()
    before = time.time()
    tasks.mark_running("executing", task)
    body = client.get(f"/tasks/{task_id}/").json()
    assert body == {"task_id": task_id, "state": "running", "started_at": body["started_at"]}
    assert before <= body["started_at"] <= time.time()  # the moment the marker was left, not a placeholder


# validate_email accepts these, Django's SMTP backend cannot send them (its prep_address raises ValueError).
UNSENDABLE_ADDRESSES = ["\u212a@example.test", "\u017fam@example.test",  # the Kelvin sign, the long s: not ASCII
                        '"\x12"@example.test']  # a control character in a quoted local part
EMAIL_ENDPOINTS = ["/email/blocking/", "/email/deferred/", "/email/deferred/retries/", "/email/deferred/production/",
                   "/email/ledger/", "/djtasks/email/", "/signup/blocking/",
                   "/signup/deferred/"]
SMTP_RULES = EmailBackend(alias="test", host="localhost")  # never opened: only its prep_address is used


@pytest.mark.parametrize("address", UNSENDABLE_ADDRESSES)
def test_these_addresses_pass_validate_email_but_the_smtp_backend_refuses_them(address):
    """The premise of the check below: without it they reach the send and fail there (a 500, a dead task)."""
    validate_email(address)
    with pytest.raises(ValueError, match="Invalid address"):
        SMTP_RULES.prep_address(address)


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(local=st.from_regex(r"[-!#$%&'*+/=?^_`{}|~0-9A-Za-z]+(\.[-!#$%&'*+/=?^_`{}|~0-9A-Za-z]+)*",
                                      fullmatch=True),
                  domain=st.sampled_from(["example.test", "a-b.example.test", "localhost", "[127.0.0.1]",
                                          "xn--exmple-cua.test"]))
def test_a_plain_ascii_address_that_validate_email_accepts_the_smtp_backend_accepts_too(local, domain):
    """Why email_parameter may skip prep_address (about 90 µs) for an ASCII address whose local part is not quoted."""
    try:
        validate_email(f"{local}@{domain}")
    except ValidationError:
        return
    assert SMTP_RULES.prep_address(f"{local}@{domain}") == f"{local}@{domain}"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("address", UNSENDABLE_ADDRESSES)
@pytest.mark.parametrize("path", EMAIL_ENDPOINTS)
def test_an_address_smtp_cannot_send_is_a_400_on_every_email_endpoint(client, huey_queue, path, address):
    response = client.post(path, {"to": address}, headers={"Accept": "application/json"})
    assert response.status_code == 400
    assert response.json() == {
        "error": "'to' cannot be sent over SMTP: the part before the @ must be printable ASCII"}
    assert (mail.outbox, huey_queue.pending_count(), EmailJob.objects.count()) == ([], 0, 0)


def test_an_idn_domain_is_still_accepted(client):
    """The check refuses what SMTP cannot carry, not every non-ASCII address: an international domain is sent in
    its ASCII form (IDNA)."""
    response = client.post("/email/blocking/", {"to": "ada@ex\u00e4mple.test"})
    assert response.status_code == 200
    assert mail.outbox[0].to == ["ada@xn--exmple-cua.test"]
