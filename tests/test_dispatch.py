"""/email/deferred/ is one view on every queue backend: it enqueues, counts and looks up through the API its settings
name (labsite.dispatch). The real backends' counts and lookups: tests/test_site_every_backend.py."""

import uuid

import pytest
from django.core import mail
from django.test import override_settings

from labsite import dispatch, tasks


def test_the_deferred_view_enqueues_through_huey_by_default(client, huey_queue):
    response = client.post("/email/deferred/", {"to": "ada@example.test"})
    assert response.status_code == 202
    assert [t.id for t in huey_queue.pending()] == [response.json()["task_id"]]
    assert dispatch.backlog() == 1


@override_settings(QUEUE_API="django_tasks",
                   TASKS={"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}})
def test_the_deferred_view_enqueues_through_django_tasks_when_the_backend_says_so(client, huey_queue):
    from django.tasks import default_task_backend

    response = client.post("/email/deferred/", {"to": "grace@example.test"})
    assert response.status_code == 202
    task_id = response.json()["task_id"]
    assert response["Location"] == f"/tasks/{task_id}/"
    [result] = default_task_backend.results
    assert (result.id, result.args) == (task_id, ["grace@example.test"])
    assert huey_queue.pending_count() == 0 and mail.outbox == []
    # the status endpoint follows the chosen API: the Tasks API's, whose dummy backend keeps no results
    status = client.get(f"/tasks/{task_id}/").json()
    assert status == {"error": "this queue keeps no results (its Tasks backend keeps none)", "task_id": task_id}


@override_settings(QUEUE_API="django_tasks",
                   TASKS={"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}})
def test_a_tasks_backend_whose_backlog_nobody_can_count_says_so():
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="DummyBackend"):
        dispatch.backlog()


@override_settings(QUEUE_API="django_tasks",
                   TASKS={"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}})
def test_the_immediate_backend_runs_the_task_in_the_request_and_has_no_backlog(client, huey_queue):
    sent = dispatch.enqueue(tasks.WELCOME_EMAIL, "now@example.test")
    assert (sent.state, sent.result["to"]) == ("delivered", "now@example.test")
    assert len(mail.outbox) == 1 and dispatch.backlog() == 0 and huey_queue.pending_count() == 0
    response = client.get(f"/tasks/{sent.task_id}/")
    assert (response.status_code, response.json()["error"]) == (
        404, "this queue keeps no results (its Tasks backend keeps none)")


@override_settings(QUEUE_API="carrier-pigeon")
def test_an_unknown_queue_api_fails_loudly():
    with pytest.raises(KeyError):
        dispatch.enqueue_welcome_email("x@example.test")


def test_the_site_tells_a_task_id_it_issued_from_any_other():
    issued = dispatch.issue_task_id()
    assert uuid.UUID(issued).version == 4 and dispatch.issued_here(issued)
    assert not dispatch.issued_here(str(uuid.uuid4()))
    tampered = issued[:-1] + ("0" if issued[-1] != "0" else "1")
    assert not dispatch.issued_here(tampered)


def test_a_huey_task_is_looked_up_by_id_without_reading_the_queue(client, huey_queue, monkeypatch):
    """The status endpoint reads keys by id; an unpickling scan of the queue (pending()) would hold a web worker for
    as long as the queue is deep."""
    task_id = client.post("/email/deferred/", {"to": "scan@example.test"}).json()["task_id"]

    def no_scan(*args, **kwargs):
        raise AssertionError("the status endpoint scanned the queue")

    monkeypatch.setattr(type(huey_queue), "pending", no_scan)
    assert client.get(f"/tasks/{task_id}/").json() == {"task_id": task_id, "state": "queued"}
    unknown = str(uuid.uuid4())
    assert client.get(f"/tasks/{unknown}/").status_code == 404


@pytest.mark.parametrize("table", ["WELCOME_EMAIL", "THUMBNAIL", "NOOP", "SIGNUP_CHECK", "EMAIL_JOB",
                                   "WELCOME_EMAIL_RETRIES", "WELCOME_EMAIL_PRODUCTION"])
def test_every_job_is_a_task_of_every_api_that_its_worker_finds_again_by_name(table):
    """A worker finds a task by name: Django Tasks imports its module path, Celery and Huey look its name up in the
    registry that importing labsite.tasks fills. Each must lead back to the very task the view enqueues."""
    from celery import current_app
    from django.utils.module_loading import import_string
    from huey.contrib.djhuey import HUEY

    by_api = getattr(tasks, table)
    # Django's Tasks API has no retries: the retries design is not offered there
    assert set(by_api) == set(dispatch.APIS) - ({"django_tasks"} if table == "WELCOME_EMAIL_RETRIES" else set())
    if "django_tasks" in by_api:
        assert import_string(by_api["django_tasks"].module_path) is by_api["django_tasks"]
    assert current_app.tasks[by_api["celery"].name] is by_api["celery"]._get_current_object()  # a shared_task proxy
    assert by_api["celery"].name.startswith("labsite.tasks.")
    huey_task = by_api["huey"].task_class
    assert HUEY._registry.string_to_task(f"labsite.tasks.{huey_task.__name__}") is huey_task
    assert getattr(tasks, huey_task.__name__) is by_api["huey"]


def test_the_seed_articles_celery_task_keeps_its_name():
    assert tasks.WELCOME_EMAIL["celery"].name == "labsite.tasks.send_email_task"


def test_the_consumer_prunes_results_and_running_markers_past_their_ttl(huey_queue, settings):
    """Huey keeps a result until it is read without peek, and the status endpoint only peeks: without pruning the
    result store (and the `running:` markers) would grow with every task for good."""
    import threading
    import time

    settings.LAB_HUEY_RESULT_TTL_S = 60
    old, fresh = dispatch.issue_task_id(), dispatch.issue_task_id()
    for task_id, started in ((old, time.time() - 61), (fresh, time.time())):
        huey_queue.put(tasks.RUNNING_KEY.format(task_id), started)
        huey_queue.put(task_id, {"sent": True})
    scheduler_class = huey_queue.create_consumer(workers=1, periodic=False).scheduler_class
    scheduler_class(huey_queue, threading.Event(), 1, False).loop()  # one pass of the consumer's scheduler thread
    assert set(huey_queue.storage.result_items()) == {fresh, tasks.RUNNING_KEY.format(fresh)}
    assert dispatch.queue_api("huey").state(fresh)["state"] == "delivered"


@pytest.mark.django_db(transaction=True)
def test_each_design_enqueues_its_own_task_with_the_queues_own_retry_options(client, huey_queue):
    """plain: no retries; retries and production: Huey's `retries` and `retry_delay` (production enqueued on commit,
    here at once: the view holds no transaction)."""
    for design, retries in (("plain", 0), ("retries", 4), ("production", 4)):
        response = client.post(f"/email/deferred/{design}/", {"to": f"{design}@example.test"})
        assert response.status_code == 202, response.content
        [queued] = [t for t in huey_queue.pending() if t.id == response.json()["task_id"]]
        assert (queued.retries, queued.args) == (retries, (f"{design}@example.test",))


@pytest.mark.django_db(transaction=True)
def test_the_production_design_enqueues_only_once_its_transaction_commits(huey_queue):
    from django.db import transaction

    with transaction.atomic():
        sent = dispatch.enqueue_email("production", "later@example.test")
        assert huey_queue.pending_count() == 0
    assert [t.id for t in huey_queue.pending()] == [sent.task_id]
    with pytest.raises(RuntimeError), transaction.atomic():
        dispatch.enqueue_email("production", "never@example.test")
        raise RuntimeError("rolled back")
    assert huey_queue.pending_count() == 1


def test_the_celery_designs_carry_the_options_celerys_docs_name():
    retries, production = tasks.WELCOME_EMAIL_RETRIES["celery"], tasks.WELCOME_EMAIL_PRODUCTION["celery"]
    assert (retries.max_retries, retries.retry_backoff, retries.acks_late) == (4, 1, False)
    assert (production.acks_late, production.reject_on_worker_lost, production.max_retries) == (True, True, 4)
    assert set(production.autoretry_for) == set(tasks.SEND_ERRORS)


def test_a_celery_worker_killed_mid_restore_holds_back_its_tasks_seconds_not_minutes(monkeypatch):
    """Kombu's restore of unacknowledged tasks holds a Redis lock; a worker killed while it held it kept every task
    of notebook 05's kill episode back for the lock's default 300 s."""
    from labsite import settings as site_settings

    monkeypatch.setenv("LAB_CELERY_VISIBILITY_TIMEOUT", "10")
    for chosen in (site_settings.celery_redis(), site_settings.celery_redis_acks_late()):
        options = chosen["CELERY_BROKER_TRANSPORT_OPTIONS"]
        assert options["unacked_mutex_expire"] <= options["visibility_timeout"]
        assert options["unacked_restore_interval"] * options["unacked_restore_throttle"] <= 1


@pytest.mark.django_db(transaction=True)
@override_settings(QUEUE_API="django_tasks",
                   TASKS={"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}})
def test_a_design_the_queue_does_not_offer_is_a_404_and_enqueues_nothing(client):
    from django.tasks import default_task_backend

    default_task_backend.clear()
    response = client.post("/email/deferred/retries/", {"to": "r@example.test"})
    assert response.status_code == 404 and "no retries design" in response.json()["error"]
    assert client.post("/email/deferred/sometimes/", {"to": "r@example.test"}).status_code == 404
    assert default_task_backend.results == []
    assert client.post("/email/deferred/production/", {"to": "p@example.test"}).status_code == 202
    assert len(default_task_backend.results) == 1


@pytest.mark.django_db(transaction=True)
def test_every_enqueue_of_a_request_and_only_an_enqueue_is_timed_in_its_enqueue_span(client, huey_queue):
    """labsite.middleware's Server-Timing: `app` on every answer, `enqueue` (the time inside dispatch.enqueue) on the
    answers of views that enqueued, whichever way (a design enqueued on commit too); none outside a request."""
    from helpers.instruments.client import server_timing_spans

    def spans(path, form=None):
        response = client.post(path, form) if form else client.get(path)
        assert response.status_code < 300, response.content
        return server_timing_spans(response["Server-Timing"])

    for path in ("/email/deferred/", "/email/deferred/retries/", "/email/deferred/production/"):
        timed = spans(path, {"to": "span@example.test"})
        assert set(timed) == {"app", "enqueue"} and 0 < timed["enqueue"] < timed["app"], (path, timed)
    assert set(spans("/email/validate/", {"to": "span@example.test"})) == {"app"}
    assert set(spans("/noop/")) == {"app"}
    assert dispatch.enqueue_welcome_email("outside@example.test")  # no request: nothing to time it into
    assert huey_queue.pending_count() == 4
