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
