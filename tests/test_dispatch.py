"""/email/deferred/ is one view on every queue backend: it enqueues through the API its settings name."""

import pytest
from django.core import mail
from django.test import override_settings

from labsite import dispatch


def test_the_deferred_view_enqueues_through_huey_by_default(client, huey_queue):
    response = client.post("/email/deferred/", {"to": "ada@example.test"})
    assert response.status_code == 202
    assert [t.id for t in huey_queue.pending()] == [response.json()["task_id"]]


@override_settings(QUEUE_API="django_tasks",
                   TASKS={"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}})
def test_the_deferred_view_enqueues_through_django_tasks_when_the_backend_says_so(client, huey_queue):
    from django.tasks import default_task_backend

    response = client.post("/email/deferred/", {"to": "grace@example.test"})
    assert response.status_code == 202
    task_id = response.json()["task_id"]
    assert response["Location"] == f"/djtasks/{task_id}/"
    [result] = default_task_backend.results
    assert (result.id, result.args) == (task_id, ["grace@example.test"])
    assert huey_queue.pending_count() == 0 and mail.outbox == []


@override_settings(QUEUE_API="carrier-pigeon")
def test_an_unknown_queue_api_fails_loudly():
    with pytest.raises(KeyError):
        dispatch.enqueue_welcome_email("x@example.test")


@pytest.mark.parametrize("table", ["WELCOME_EMAIL", "THUMBNAIL", "NOOP", "SIGNUP_CHECK"])
def test_every_job_is_a_task_of_every_api_that_its_worker_finds_again_by_name(table):
    """A worker finds a task by name: Django Tasks imports its module path, Celery and Huey look its name up in the
    registry that importing labsite.tasks fills. Each must lead back to the very task the view enqueues."""
    from celery import current_app
    from django.utils.module_loading import import_string
    from huey.contrib.djhuey import HUEY

    from labsite import tasks

    by_api = getattr(tasks, table)
    assert set(by_api) == set(dispatch.ENQUEUE)
    assert import_string(by_api["django_tasks"].module_path) is by_api["django_tasks"]
    assert current_app.tasks[by_api["celery"].name] is by_api["celery"]._get_current_object()  # a shared_task proxy
    assert by_api["celery"].name.startswith("labsite.tasks.")
    huey_task = by_api["huey"].task_class
    assert HUEY._registry.string_to_task(f"labsite.tasks.{huey_task.__name__}") is huey_task
    assert getattr(tasks, huey_task.__name__) is by_api["huey"]


def test_the_seed_articles_celery_task_keeps_its_name():
    from labsite import tasks

    assert tasks.WELCOME_EMAIL["celery"].name == "labsite.tasks.send_email_task"
