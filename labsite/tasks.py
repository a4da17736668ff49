"""Every background task of the site, in the module djhuey's run_huey autodiscovers. Each is a thin wrapper
around a plain job function (labsite.jobs, labsite.thumbnails, labsite.ledger), so the blocking path and every
queued path run one implementation.

- Huey's own tasks (`send_welcome_email`, `make_thumbnail`, `do_nothing`): calling one enqueues it. Their names
  are the task names Huey logs and its stats record.
- The same jobs through Django's Tasks API (`*_django_task`, `.enqueue(...)`): the TASKS setting alone decides
  whether they run on the Huey consumer or inside the request. Arguments and results must be JSON.
- The same email as a Celery task (`send_email_task`, `@shared_task`, `.delay(...)`), as the seed article writes it:
  the app (labsite/celery.py) sends it to the broker of the CELERY_ settings.
- The no-op and the signup check on every API (`do_nothing*`, `check_signup*`), which labsite.dispatch picks by
  QUEUE_API: a drain measurement's filler, and the transaction experiments' witness.
- The job ledger's task (`deliver_email_job`), enqueued in the request's on-commit hook or by the reconciler, with
  retries and backoff from settings.LAB_LEDGER.
"""

import time

from celery import shared_task
from django.conf import settings
from django.tasks import task as django_task
from huey import signals
from huey.contrib.djhuey import HUEY, db_task, signal
from huey.contrib.djhuey import task as huey_task

# Module imports, not names: labsite.ledger enqueues the tasks below, so each module may load first.
from labsite import jobs, ledger, models, thumbnails

RUNNING_KEY = "running:{}"


@huey_task()
def send_welcome_email(to: str) -> dict:
    return jobs.send_welcome_email(to)


@huey_task()
def make_thumbnail(source: str) -> dict:
    return thumbnails.make_thumbnail(source)


@huey_task()
def do_nothing() -> None:
    return jobs.do_nothing()


# The transaction experiments (labsite/views/transactions.py): the task looks for the Signup row the request wrote
# in its transaction and says in the email's subject what it saw and when it started, so the SMTP server's record
# shows from outside whether a task ran before the commit.
SIGNUP_SUBJECT = "Welcome: signup row {seen} when the task started at {started_at:.6f}"


def check_signup(to: str, signup_id: int) -> dict:
    """Look for the Signup row, then send the welcome email with a subject saying whether it was there."""
    started_at = time.time()
    seen = "visible" if models.Signup.objects.filter(pk=signup_id).exists() else "missing"
    message = jobs.welcome_message(to)
    message.subject = SIGNUP_SUBJECT.format(seen=seen, started_at=started_at)
    message.send(fail_silently=False)
    return {"to": to, "row": seen, "started_at": started_at}


@db_task()
def check_signup_huey(to: str, signup_id: int) -> dict:
    return check_signup(to, signup_id)


@django_task
def send_welcome_email_django_task(to: str) -> dict:
    return jobs.send_welcome_email(to)


@django_task
def make_thumbnail_django_task(source: str) -> dict:
    return thumbnails.make_thumbnail(source)


@django_task
def do_nothing_django_task() -> None:
    return jobs.do_nothing()


@django_task
def check_signup_django_task(to: str, signup_id: int) -> dict:
    return check_signup(to, signup_id)


@shared_task
def send_email_task(to: str) -> dict:
    """The welcome email as the seed article's Celery code has it (`send_email_task.delay(...)`)."""
    return jobs.send_welcome_email(to)


@shared_task
def do_nothing_celery_task() -> None:
    """The empty job on Celery, for drain measurements (labsite.dispatch.enqueue_noop)."""
    return jobs.do_nothing()


@shared_task
def check_signup_celery_task(to: str, signup_id: int) -> dict:
    return check_signup(to, signup_id)


def queued_tasks() -> int:
    """Tasks waiting in Huey's queue (not those held for later, nor those workers hold): the reconciler's test of
    whether a pending job's task may still be waiting there."""
    return HUEY.pending_count()


def run_email_job(job_id: str) -> dict:
    return ledger.deliver_job(job_id)


LEDGER_RETRIES = {"retries": settings.LAB_LEDGER["retries"], "retry_delay": settings.LAB_LEDGER["retry_delay_s"],
                  "retry_backoff": settings.LAB_LEDGER["retry_backoff"]}
deliver_email_job = db_task(name="deliver_email_job", **LEDGER_RETRIES)(run_email_job)


@signal(signals.SIGNAL_EXECUTING)
def mark_running(signal_name, task_instance, exc=None):
    """Leaves a marker so the status endpoint can tell a running task from an unknown id."""
    HUEY.put(RUNNING_KEY.format(task_instance.id), time.time())
