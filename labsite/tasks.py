"""Every background task of the site, in the module djhuey's run_huey autodiscovers. Each is a thin wrapper
around a plain job function (labsite.jobs, labsite.thumbnails, labsite.ledger), so the blocking path and every
queued path run one implementation.

Each job is a task of every queue API the site declares (`on_every_api`, settings.TASK_APIS: the chosen backend's,
Huey's and Django's), in a table labsite.dispatch picks from by QUEUE_API:
- Huey's own task, named after the job (`send_welcome_email`, `make_thumbnail`, `do_nothing`, `check_signup`):
  calling one enqueues it. Its name is the one Huey logs and its stats record.
- Django's Tasks API (`<job>_django_task`, `.enqueue(...)`): the TASKS setting alone decides whether it runs on a
  worker or inside the request. Arguments and results must be JSON.
- Celery (`<job>_celery_task`, `@shared_task`, `.delay(...)`), sent to the broker of the CELERY_ settings by the app
  of labsite/celery.py. The email keeps the seed article's name, `send_email_task`.
- Dramatiq (`<job>_dramatiq_actor`, `.send(...)`), on the broker django-dramatiq sets up from DRAMATIQ_BROKER.
  Arguments must be JSON.
- procrastinate (`<job>_procrastinate_task`, `.defer(**kwargs)`: keyword arguments only), on the app
  procrastinate.contrib.django builds once Django is ready (a blueprint until then, and on every other backend).
The job ledger's task (`deliver_email_job`, labsite.ledger.deliver_job) is a task of every API too, enqueued in the
request's on-commit hook or by the reconciler; its retries are the ledger's own (no queue's retry machinery).

The welcome email comes in three designs without a ledger (labsite.dispatch.EMAIL_DESIGNS): plain (WELCOME_EMAIL, no
retries), the queue's own retries (WELCOME_EMAIL_RETRIES) and the settings the queue's documentation recommends for
production (WELCOME_EMAIL_PRODUCTION, enqueued on commit). Django's Tasks API has no retries: those tables leave it out.
"""

import functools
import smtplib
import time

from django.conf import settings
from django.tasks import task as django_task
from huey import signals
from huey.contrib.djhuey import HUEY, db_task, signal
from huey.contrib.djhuey import task as huey_task

# Module imports, not names: labsite.ledger enqueues the tasks below, so each module may load first.
from labsite import jobs, ledger, thumbnails
from labsite.huey_classes import RUNNING_KEY


def module_function(job, name: str):
    """`job` as a function of this module called `name`. Django Tasks and Celery find a task again by its function's
    module and name, and Huey and Celery name the task after them, so each API's task needs a function of its own."""

    @functools.wraps(job)
    def run(*args, **kwargs):
        return job(*args, **kwargs)

    run.__module__, run.__name__, run.__qualname__ = __name__, name, name
    return run


def dramatiq_actor(job):
    """`job` as a Dramatiq actor, on the broker django-dramatiq set up (its app is installed on the Dramatiq backends
    and sets the broker before this module loads). Without one (Dramatiq declared on another backend) on an in-memory
    StubBroker that nothing sends to: left to itself, dramatiq.actor would make a RabbitMQ broker of its own."""
    import dramatiq
    import dramatiq.broker

    if dramatiq.broker.global_broker is None:
        from dramatiq.brokers.stub import StubBroker

        dramatiq.set_broker(StubBroker())
    return dramatiq.actor(job)


def api_decorator(api: str, huey, huey_options: dict | None, celery_options: dict | None):
    """The decorator that makes a function a task of `api`, its library imported only now."""
    if api == "huey":
        return huey(**(huey_options if huey_options is not None else settings.LAB_HUEY_TASK_DEFAULTS))
    if api == "django_tasks":
        return django_task
    if api == "celery":
        from celery import shared_task

        import labsite.celery  # noqa: F401  the app shared_task binds to, as Celery's Django guide loads it
        return shared_task(**(celery_options or {}))
    if api == "dramatiq":
        return dramatiq_actor
    if api == "procrastinate":
        from procrastinate.contrib.django import app as procrastinate_app

        return procrastinate_app.task
    raise ValueError(f"no such queue API: {api!r}")


def on_every_api(job, name: str, *, huey=huey_task, celery_name: str | None = None, huey_options: dict | None = None,
                 celery_options: dict | None = None, django_tasks: bool = True) -> dict:
    """`job` as a task of each queue API of settings.TASK_APIS, bound in this module under the names the docstring
    above gives (where the workers look them up); returns the tasks by API. `huey=db_task` for a job that reads the
    database; `*_options` are the API's own task options (retries...; a Huey task given none takes
    settings.LAB_HUEY_TASK_DEFAULTS); `django_tasks=False` leaves Django's Tasks API
    out (it has no such option)."""
    names = {"huey": name, "django_tasks": f"{name}_django_task", "celery": celery_name or f"{name}_celery_task",
             "dramatiq": f"{name}_dramatiq_actor", "procrastinate": f"{name}_procrastinate_task"}
    if not django_tasks:
        del names["django_tasks"]
    by_api = {api: api_decorator(api, huey, huey_options, celery_options)(module_function(job, names[api]))
              for api in names if api in settings.TASK_APIS}
    globals().update({names[api]: task for api, task in by_api.items()})
    return by_api


WELCOME_EMAIL = on_every_api(jobs.send_welcome_email, "send_welcome_email", celery_name="send_email_task")
# The queue's own retries, as each documents them: Huey's `retries` + `retry_delay` (a fixed delay;
# https://huey.readthedocs.io/en/latest/guide.html#retrying-tasks-that-fail), Celery's `autoretry_for` + `max_retries`
# + `retry_backoff` (exponential, with full jitter by default;
# https://docs.celeryq.dev/en/stable/userguide/tasks.html#automatic-retry-for-known-exceptions). A send that raised
# is retried whatever the reply was: 4xx, 5xx, a timeout, a dropped connection.
SEND_ERRORS = (smtplib.SMTPException, OSError)
RETRIES = settings.LAB_TASK_RETRIES
HUEY_RETRIES = {"retries": RETRIES["retries"], "retry_delay": RETRIES["delay_s"]}
CELERY_RETRIES = {"autoretry_for": SEND_ERRORS, "max_retries": RETRIES["retries"],
                  "retry_backoff": RETRIES["backoff_s"], "retry_backoff_max": RETRIES["backoff_max_s"]}
WELCOME_EMAIL_RETRIES = on_every_api(jobs.send_welcome_email, "send_welcome_email_retries", huey_options=HUEY_RETRIES,
                                     celery_options=CELERY_RETRIES, django_tasks=False)
# The settings the queue's documentation recommends for production (labsite.dispatch enqueues them on commit):
# Celery acknowledges a task once it finished and gives back one whose worker process died
# (https://docs.celeryq.dev/en/stable/userguide/configuration.html#task-acks-late, #task-reject-on-worker-lost; the
# worker's prefetch multiplier of 1 is a worker setting: settings.celery_redis), plus the retries above. Huey: the
# retries above (it acknowledges nothing). Django's Tasks API (django-tasks-db): the plain task, enqueued on commit.
WELCOME_EMAIL_PRODUCTION = on_every_api(
    jobs.send_welcome_email, "send_welcome_email_production", huey_options=HUEY_RETRIES,
    celery_options={**CELERY_RETRIES, "acks_late": True, "reject_on_worker_lost": True}, django_tasks=False)
WELCOME_EMAIL_PRODUCTION["django_tasks"] = WELCOME_EMAIL["django_tasks"]
THUMBNAIL = on_every_api(thumbnails.make_thumbnail, "make_thumbnail")
NOOP = on_every_api(jobs.do_nothing, "do_nothing")  # a drain measurement's filler
SIGNUP_CHECK = on_every_api(jobs.check_signup, "check_signup", huey=db_task)  # the transaction experiments' witness


def deliver_ledger_job(job_id: str) -> dict:
    """The ledger's job, looked up when it runs: labsite.ledger enqueues this task, so it may still be loading now."""
    return ledger.deliver_job(job_id)


EMAIL_JOB = on_every_api(deliver_ledger_job, "deliver_email_job", huey=db_task, huey_options={})  # the ledger retries


@signal(signals.SIGNAL_EXECUTING)
def mark_running(signal_name, task_instance, exc=None):
    """Leaves a marker so the status endpoint can tell a running task from an unknown id."""
    HUEY.put(RUNNING_KEY.format(task_instance.id), time.time())


# procrastinate's "Retry stalled jobs" recipe, where the backend's settings ask for it (LAB_RETRY_STALLED_JOBS:
# procrastinate_postgres_production): a periodic task retries the jobs left "doing" by a worker whose heartbeat
# stopped. Its own queue keeps it out of the lab's backlog, which counts the "default" queue.
RETRY_STALLED_JOBS = getattr(settings, "LAB_RETRY_STALLED_JOBS", None)
if RETRY_STALLED_JOBS and "procrastinate" in settings.TASK_APIS:
    from procrastinate.contrib.django import app as procrastinate_app

    @procrastinate_app.periodic(cron=RETRY_STALLED_JOBS["cron"])
    @procrastinate_app.task(queue=RETRY_STALLED_JOBS["queue"], queueing_lock="retry_stalled_jobs", pass_context=True)
    async def retry_stalled_jobs(context, timestamp):
        manager = context.app.job_manager
        for job in await manager.get_stalled_jobs(
                seconds_since_heartbeat=RETRY_STALLED_JOBS["seconds_since_heartbeat"]):
            await manager.retry_job(job)
