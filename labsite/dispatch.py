"""The deferred path's one way in: the welcome email enqueued through the API the settings chose (QUEUE_API), so
/email/deferred/ is one view on every queue backend. A backend that brings a new API adds one function here."""

from django.conf import settings

from labsite import tasks


def through_huey(to: str) -> tuple[str, str]:
    return tasks.send_welcome_email(to).id, "task-status"


def through_django_tasks(to: str) -> tuple[str, str]:
    return tasks.send_welcome_email_django_task.enqueue(to).id, "djtask-status"


def through_celery(to: str) -> tuple[str, str]:
    return tasks.send_email_task.delay(to).id, "celery-status"


WELCOME_EMAIL = {"huey": through_huey, "django_tasks": through_django_tasks, "celery": through_celery}


def enqueue_welcome_email(to: str) -> tuple[str, str]:
    """Enqueue the email; returns the task's id and the name of the view that reports its state."""
    return WELCOME_EMAIL[settings.QUEUE_API](to)
