"""The deferred paths' one way in: a job enqueued through the API the settings chose (QUEUE_API), so
/email/deferred/ (and every other enqueueing view) is one view on every queue backend. A backend that brings a new
API adds one entry to ENQUEUE and STATUS_VIEW, and one to labsite.tasks.on_every_api."""

from django.conf import settings

from labsite import tasks

# How each API enqueues a task object and names the enqueued task's id.
ENQUEUE = {"huey": lambda task, *args: task(*args).id,
           "django_tasks": lambda task, *args: task.enqueue(*args).id,
           "celery": lambda task, *args: task.delay(*args).id}
STATUS_VIEW = {"huey": "task-status", "django_tasks": "djtask-status", "celery": "celery-status"}


def enqueue(job: dict, *args) -> str:
    """Enqueue `job` (a table of labsite.tasks: its task by API) with `args` through the configured API; returns
    the task's id."""
    api = settings.QUEUE_API
    return ENQUEUE[api](job[api], *args)


def enqueue_welcome_email(to: str) -> tuple[str, str]:
    """Enqueue the email; returns the task's id and the name of the view that reports its state."""
    return enqueue(tasks.WELCOME_EMAIL, to), STATUS_VIEW[settings.QUEUE_API]


def enqueue_signup_check(to: str, signup_id: int) -> str:
    """Enqueue the task that looks for Signup `signup_id` and mails `to` what it saw; returns the task's id."""
    return enqueue(tasks.SIGNUP_CHECK, to, signup_id)


def enqueue_noop(count: int) -> int:
    """Enqueue `count` no-op tasks one by one (each its own enqueue, as `count` requests would); returns count."""
    for _ in range(count):
        enqueue(tasks.NOOP)
    return count
