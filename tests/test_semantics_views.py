"""The site's pieces behind helpers.instruments.queue_semantics, through Django's test client and the real SqliteHuey
of the test settings (no servers): the validating baseline, the no-op filler, the transaction views."""

import io
import json

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.test import override_settings

from helpers.instruments import queue_semantics
from labsite import dispatch, jobs
from labsite.models import Signup
from tests.test_views import BAD_ADDRESSES, UNSENDABLE_ADDRESSES


def test_validate_answers_the_parsed_address_and_enqueues_nothing(client, huey_queue):
    response = client.post("/email/validate/", {"to": "  ada@example.test "})
    assert response.status_code == 200
    assert response.json() == {"valid": True, "to": "ada@example.test"}
    assert huey_queue.pending_count() == 0 and mail.outbox == []


@pytest.mark.parametrize("form", BAD_ADDRESSES)
def test_validate_refuses_exactly_what_the_deferred_view_refuses(client, huey_queue, form):
    validated, deferred = client.post("/email/validate/", form), client.post("/email/deferred/", form)
    assert (validated.status_code, validated.json()) == (deferred.status_code, deferred.json())
    assert validated.status_code == 400
    assert huey_queue.pending_count() == 0


def test_validate_takes_only_post(client):
    assert client.get("/email/validate/").status_code == 405


def test_enqueue_noop_command_fills_the_queue_and_prints_one_json_line(huey_queue):
    out = io.StringIO()
    call_command("enqueue_noop", "3", stdout=out)
    [line] = out.getvalue().splitlines()
    report = json.loads(line)
    assert (report["count"], report["api"]) == (3, "huey") and report["seconds"] > 0
    assert [t.name for t in huey_queue.pending()] == ["do_nothing"] * 3


def test_enqueue_noop_command_refuses_a_negative_count(huey_queue):
    with pytest.raises(CommandError):
        call_command("enqueue_noop", "-1")


@override_settings(QUEUE_API="django_tasks",
                   TASKS={"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}})
def test_enqueue_noop_goes_through_the_tasks_api_when_the_settings_say_so(huey_queue):
    from django.tasks import default_task_backend

    default_task_backend.clear()
    assert dispatch.enqueue_noop(2) == 2
    assert [r.task.name for r in default_task_backend.results] == ["do_nothing_django_task"] * 2
    assert huey_queue.pending_count() == 0


# -- the transaction views, on the test database with real commits (on_commit hooks run) ---------------------------

real_commits = pytest.mark.django_db(transaction=True)


@real_commits
def test_rollback_drops_the_row_but_not_a_huey_task_enqueued_inside_it(client, huey_queue):
    response = client.post("/tx/rollback/", {"to": "rb@example.test"})
    assert response.status_code == 200
    body = response.json()
    assert body["rolled_back"] is True
    assert not Signup.objects.exists()
    assert [t.id for t in huey_queue.pending()] == [body["task_id"]]  # Huey's SQLite file is not Django's database


@real_commits
@pytest.mark.parametrize("path", ["/tx/slow-commit/", "/tx/on-commit/"])
def test_a_committed_signup_is_checked_by_its_task_which_reports_the_row_in_the_subject(client, huey_queue, path):
    response = client.post(path, {"to": "sc@example.test", "hold_ms": "0"})
    assert response.status_code == 200
    body = response.json()
    assert body["commit_started_at"] <= body["committed_at"]
    assert Signup.objects.filter(pk=body["signup_id"], email="sc@example.test").exists()
    [task] = huey_queue.pending()
    assert task.name == "check_signup" and (body["task_id"] in (task.id, None))
    huey_queue.execute(huey_queue.dequeue())
    [message] = mail.outbox
    assert message.to == ["sc@example.test"]
    assert message.subject.startswith("Welcome: signup row visible when the task started at ")


@real_commits
def test_the_check_says_missing_for_a_row_that_is_not_there():
    result = jobs.check_signup("gone@example.test", 10**9)
    assert result["row"] == "missing"
    assert "signup row missing" in mail.outbox[0].subject


@real_commits
@pytest.mark.parametrize("hold_ms", ["-1", "2001", "abc", "\u00b2", "1e3", ["1", "2"], "9" * 5000])
def test_a_bad_hold_is_a_400_and_writes_nothing(client, huey_queue, hold_ms):
    response = client.post("/tx/slow-commit/", {"to": "h@example.test", "hold_ms": hold_ms})
    assert response.status_code == 400
    assert "hold_ms" in response.json()["error"]
    assert not Signup.objects.exists() and huey_queue.pending_count() == 0


@real_commits
@pytest.mark.parametrize("path", ["/tx/rollback/", "/tx/slow-commit/", "/tx/on-commit/"])
def test_the_transaction_views_refuse_a_bad_address_and_other_methods(client, huey_queue, path):
    assert client.post(path, {"to": "not-an-address"}).status_code == 400
    assert client.get(path).status_code == 405
    assert not Signup.objects.exists() and huey_queue.pending_count() == 0


@pytest.mark.parametrize("seen,started_at,before", [
    ("missing", 100.5, True),
    ("visible", 99.0, True),  # inside the transaction itself (a backend that runs the task in the request)
    ("visible", 100.5, False),
])
def test_a_task_ran_before_the_commit_when_it_missed_the_row_or_started_earlier(seen, started_at, before):
    subject = jobs.SIGNUP_SUBJECT.format(seen=seen, started_at=started_at)  # what the task sends
    assert queue_semantics.ran_before_commit(subject, commit_started_at=100.0) is before


@real_commits
@pytest.mark.parametrize("address", UNSENDABLE_ADDRESSES)
@pytest.mark.parametrize("path", ["/email/validate/", "/tx/rollback/", "/tx/slow-commit/", "/tx/on-commit/"])
def test_an_address_the_smtp_send_cannot_take_is_refused_up_front(client, huey_queue, path, address):
    response = client.post(path, {"to": address, "hold_ms": "0"})
    assert response.status_code == 400
    assert not Signup.objects.exists() and huey_queue.pending_count() == 0
