"""The same jobs through Django's own Tasks API (`django.tasks`). Which backend runs them is the TASKS setting
alone: Huey's (`huey.contrib.djhuey.tasks_backend.HueyBackend`, deferred to the Huey consumer) or Django's
ImmediateBackend (run inside the request, the blocking baseline). Arguments and results must be JSON."""

from django.tasks import task

from labsite import jobs, thumbnails


@task
def send_welcome_email(to: str) -> dict:
    return jobs.send_welcome_email(to)


@task
def make_thumbnail(source: str) -> dict:
    return thumbnails.make_thumbnail(source)


@task
def do_nothing() -> None:
    return jobs.do_nothing()
