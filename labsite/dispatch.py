"""The deferred paths' one way in: one dispatch table per queue API (huey, django_tasks, celery, dramatiq,
procrastinate), each able to enqueue a task, count the backlog (tasks waiting for a worker) and read a task's state
by id, the way kombu sends everything through the transport you chose. QUEUE_API, set by the chosen entry of
settings.QUEUE_BACKENDS, picks the table, so every deferred view, the bounded backlog and the status endpoint are one
implementation on every queue backend.

A backend that brings a new API adds one QueueAPI subclass to APIS, and one branch to labsite.tasks.api_decorator.

The welcome email's designs without a ledger (EMAIL_DESIGNS, enqueue_email): plain, the queue's own retries, and the
queue's documented production settings, enqueued on commit by each API's own way of doing so."""

import functools
import hashlib
import hmac
import os
import re
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from labsite import tasks
from labsite.middleware import span

TASK_ID_SALT = "labsite.dispatch.task-id"


class NoStates(Exception):
    """The chosen queue keeps no state of its tasks: nothing can tell a queued task from a finished or unknown one."""


@dataclass(frozen=True)
class Enqueued:
    """A task handed to the queue. A backend that runs it in the request (Django's ImmediateBackend) says so:
    `state` "delivered" with its `result`, or "failed" with the exception classes in `errors`."""

    task_id: str
    state: str = "queued"
    result: object = None
    errors: tuple[str, ...] = ()


class QueueAPI:
    """One queue API: how a task of labsite.tasks' tables is enqueued, counted and looked up."""

    name: str
    id_rule = "a UUID"  # what task_id accepts, for a refusal's message

    def enqueue(self, task, *args) -> Enqueued:
        raise NotImplementedError

    def enqueue_on_commit(self, task, *args) -> Enqueued:
        """Enqueue once the current transaction commits (at once outside one), as Django's docs recommend for the
        Tasks API: `transaction.on_commit(partial(task.enqueue, ...))`."""
        from django.db import transaction

        enqueued: list[Enqueued] = []
        transaction.on_commit(lambda: enqueued.append(self.enqueue(task, *args)))
        if not enqueued:
            raise ImproperlyConfigured(f"{self.name}: no task id before the commit; enqueue outside a transaction")
        return enqueued[0]

    def backlog(self) -> int:
        """Tasks waiting for a worker (not those held for later, nor those a worker holds)."""
        raise NotImplementedError

    def state(self, task_id: str) -> dict | None:
        """Where the task is now ({"state": "queued" | "running" | "delivered" | "failed", ...}); None for an id
        this queue does not know. Raises NoStates when the queue keeps none."""
        raise NotImplementedError

    def task_id(self, text: str | None) -> str | None:
        """`text` as an id of this API's tasks, in canonical form; None when it cannot be one (a UUID here)."""
        try:
            return str(uuid.UUID(text or ""))
        except ValueError:
            return None


def issue_task_id() -> str:
    """A random UUID whose second half is an HMAC of its first under SECRET_KEY: the site can later tell an id it
    issued from any other without storing it (62 bits of MAC)."""
    head = bytearray(os.urandom(8))
    head[6] = (head[6] & 0x0F) | 0x40  # version 4
    return str(uuid.UUID(bytes=bytes(head) + id_mac(bytes(head))))


@functools.cache
def id_key(secret_key: str) -> bytes:
    """The HMAC key of task ids, derived from SECRET_KEY once per process (as Django's salted_hmac derives its)."""
    return hashlib.sha256(f"{TASK_ID_SALT}{secret_key}".encode()).digest()


def id_mac(head: bytes) -> bytes:
    mac = bytearray(hmac.digest(id_key(settings.SECRET_KEY), head, "sha256")[:8])
    mac[0] = (mac[0] & 0x3F) | 0x80  # RFC 4122 variant
    return bytes(mac)


def issued_here(task_id: str) -> bool:
    raw = uuid.UUID(task_id).bytes
    return hmac.compare_digest(raw[8:], id_mac(raw[:8]))


class Huey(QueueAPI):
    """Huey removes a task from its storage as a worker takes it, and its storages cannot find a task by id without
    unpickling the whole queue. So the site issues the ids (issue_task_id) and reads only keys by id: the result
    Huey stores when the task ends, the `running:` marker the consumer leaves when it starts. An id the site issued
    with neither is still queued, or lost with a killed worker (Huey cannot tell the two apart)."""

    name = "huey"

    def enqueue(self, task, *args) -> Enqueued:
        call = task.s(*args)
        call.id = issue_task_id()
        task.huey.enqueue(call)
        return Enqueued(call.id)

    def enqueue_on_commit(self, task, *args) -> Enqueued:
        """What huey.contrib.djhuey.on_commit_task does (https://huey.readthedocs.io/en/latest/django.html), with an
        id the site issued."""
        from django.db import transaction

        call = task.s(*args)
        call.id = issue_task_id()
        transaction.on_commit(lambda: task.huey.enqueue(call))
        return Enqueued(call.id)

    def backlog(self) -> int:
        from huey.contrib.djhuey import HUEY

        return HUEY.pending_count()

    def state(self, task_id: str) -> dict | None:
        from huey.contrib.djhuey import HUEY
        from huey.utils import Error

        # In the order a task moves (running, then done): a task that moves between the reads is found later on.
        started = HUEY.get(tasks.RUNNING_KEY.format(task_id), peek=True)
        outcome = HUEY.get(task_id, peek=True)
        if isinstance(outcome, Error):
            return {"state": "failed", "error": outcome.metadata.get("error"), "started_at": started}
        if outcome is not None:
            return {"state": "delivered", "result": outcome, "started_at": started}
        if started is not None:
            return {"state": "running", "started_at": started}
        return {"state": "queued"} if issued_here(task_id) else None


class DjangoTasks(QueueAPI):
    """Django's Tasks API on the backend TASKS names: enqueue and get_result are the API's own; the backlog is
    counted by the backend's library (BACKLOG, by the TASKS "BACKEND" path)."""

    name = "django_tasks"
    STATES = {"READY": "queued", "RUNNING": "running", "SUCCESSFUL": "delivered", "FAILED": "failed"}
    ID = re.compile(r"[-\w]{1,64}", re.ASCII)  # a UUID (django-tasks-db, Huey's backend) or 32 letters (RQ)
    id_rule = "1 to 64 letters, digits, '-' or '_'"

    def task_id(self, text: str | None) -> str | None:
        return text if text and self.ID.fullmatch(text) else None

    def enqueue(self, task, *args) -> Enqueued:
        result = task.enqueue(*args)
        state = self.STATES.get(result.status.name, "queued")
        return Enqueued(result.id, state, result.return_value if state == "delivered" else None,
                        tuple(e.exception_class_path for e in result.errors))

    def backlog(self) -> int:
        from django.tasks import default_task_backend

        path = settings.TASKS[default_task_backend.alias]["BACKEND"]
        if path not in BACKLOG:
            raise ImproperlyConfigured(f"no way to count the backlog of the Tasks backend {path}")
        return BACKLOG[path](default_task_backend)

    def state(self, task_id: str) -> dict | None:
        from django.tasks import default_task_backend
        from django.tasks.exceptions import TaskResultDoesNotExist

        if not default_task_backend.supports_get_result:
            raise NoStates("this queue keeps no results (its Tasks backend keeps none)")
        try:
            result = default_task_backend.get_result(task_id)
        except TaskResultDoesNotExist:
            path = settings.TASKS[default_task_backend.alias]["BACKEND"]
            result = IN_FLIGHT[path](default_task_backend, task_id) if path in IN_FLIGHT else None
            if result is None:
                return None
        body = {"state": self.STATES[result.status.name], "backend": result.backend}
        if body["state"] == "delivered":
            body["result"] = result.return_value
        elif body["state"] == "failed":
            body["errors"] = [e.exception_class_path for e in result.errors]
        return body


def ready_database_tasks(backend) -> int:
    """django-tasks-db: READY rows that are due, the rows its db_worker takes (DBTaskResult.objects.ready())."""
    from django_tasks_db.models import DBTaskResult

    return DBTaskResult.objects.ready().filter(backend_name=backend.alias).count()


def queued_rq_jobs(backend) -> int:
    """django-tasks-rq: the jobs in each of its RQ queues (Queue.count)."""
    import django_rq

    return sum(django_rq.get_queue(name).count for name in backend.queues)


def queued_vtasks_valkey_tasks(backend) -> int:
    """django-vtasks on Valkey: the length of each of its queues' lists (the worker moves a task it takes to a
    processing list of its own)."""
    from django_vtasks.conf import resolve_queue_config

    return sum(backend.driver.llen_sync(backend._get_key(f"q:{queue}")) for queue in resolve_queue_config())


def queued_vtasks_database_tasks(backend) -> int:
    """django-vtasks' database backend: QUEUED rows that are due, the rows its worker claims."""
    from django.db.models import Q
    from django.utils import timezone
    from django_vtasks.db.models import QueuedTask, TaskStatus

    return (QueuedTask.objects.filter(status=TaskStatus.QUEUED)
            .filter(Q(run_after__isnull=True) | Q(run_after__lte=timezone.now())).count())


def ready_ox_tasks(backend) -> int:
    """django-ox: READY rows that are due (no run_after, or one past), the rows its workers claim."""
    from django.db.models import Q
    from django.utils import timezone
    from django_ox.models import OxTask

    return (OxTask.objects.filter(backend_name=backend.alias, status=OxTask.Status.READY)
            .filter(Q(run_after__isnull=True) | Q(run_after__lte=timezone.now())).count())


def queued_celery_tasks(backend) -> int:
    """django-tasks-celery: the Celery broker's count, as for Celery's own API."""
    return queue_api(Celery.name).backlog()


def queued_huey_tasks(backend) -> int:
    """Huey's own Tasks backend enqueues on Huey's queue."""
    return queue_api(Huey.name).backlog()


def queued_threadmill_tasks(backend) -> int:
    """threadmill: the READY tasks in the default queue's sorted set."""
    return int(backend.client.zcard(backend.QUEUE_KEY.format(prefix=backend.key_prefix, queue_name="default")))


def threadmill_task_in_flight(backend, task_id: str):
    """threadmill 0.3.1 writes a task's result only once a worker acknowledged it (get_result knows no queued or
    running task): until then the task is the hash its enqueue wrote."""
    data = backend.client.hget(backend.TASK_KEY.format(prefix=backend.key_prefix, task_id=task_id), "data")
    return backend.deserialize_task_result(data) if data else None


# Tasks backends whose get_result knows a task only once it has run: where else a queued or running task is found
IN_FLIGHT = {"threadmill.backends.redis.RedisTaskBackend": threadmill_task_in_flight}

BACKLOG = {"django.tasks.backends.immediate.ImmediateBackend": lambda backend: 0,  # runs in the request
           "django_tasks_db.DatabaseBackend": ready_database_tasks,
           "django_tasks_rq.RQBackend": queued_rq_jobs,
           "django_vtasks.backends.valkey.ValkeyTaskBackend": queued_vtasks_valkey_tasks,
           "django_ox.backend.OxBackend": ready_ox_tasks,
           "django_vtasks.backends.db.DatabaseTaskBackend": queued_vtasks_database_tasks,
           "django_tasks_celery.CeleryBackend": queued_celery_tasks,
           "huey.contrib.djhuey.tasks_backend.HueyBackend": queued_huey_tasks,
           "threadmill.backends.redis.RedisTaskBackend": queued_threadmill_tasks}


class Celery(QueueAPI):
    """Celery through the app of labsite/celery.py: the backlog is the broker queue's message count (a passive
    queue_declare, which the Redis transport answers with LLEN); a task's state needs a result backend."""

    name = "celery"
    STATES = {"PENDING": "queued", "RECEIVED": "queued", "RETRY": "queued", "STARTED": "running",
              "SUCCESS": "delivered", "FAILURE": "failed", "REVOKED": "failed"}

    def enqueue(self, task, *args) -> Enqueued:
        return Enqueued(task.delay(*args).id)

    def enqueue_on_commit(self, task, *args) -> Enqueued:
        """Celery's own (celery.contrib.django.task.DjangoTask.apply_async_on_commit, which delay_on_commit calls too:
        https://docs.celeryq.dev/en/stable/django/first-steps-with-django.html#trigger-tasks-at-the-end-of-the-database-transaction),
        with the id given up front."""
        task_id = str(uuid.uuid4())
        task.apply_async_on_commit(args, task_id=task_id)
        return Enqueued(task_id)

    def backlog(self) -> int:
        from kombu.exceptions import ChannelError

        from labsite.celery import app

        with app.pool.acquire(block=True) as connection:
            try:
                return connection.default_channel.queue_declare(app.conf.task_default_queue, passive=True).message_count
            except ChannelError:  # no such queue (Redis: an empty list is no key): nothing waits
                return 0

    def state(self, task_id: str) -> dict | None:
        from celery.result import AsyncResult

        from labsite.celery import app

        if not app.conf.result_backend:
            raise NoStates("this queue keeps no results (no Celery result backend)")
        # PENDING is also what Celery answers for an id it never saw
        state = AsyncResult(task_id, app=app).state
        return {"state": self.STATES.get(state, state.lower())}


class Dramatiq(QueueAPI):
    """Dramatiq through the broker django-dramatiq set up (DRAMATIQ_BROKER): an actor's send() publishes a message
    whose id is the task's. The backlog is the broker's own count of the ready messages in the actors' queues (not
    those a retry holds in the delay queue); a task's state is the row labsite.dramatiq_states keeps per message."""

    name = "dramatiq"
    STATES = {"enqueued": "queued", "delayed": "queued", "running": "running", "done": "delivered",
              "failed": "failed", "skipped": "failed"}

    def enqueue(self, actor, *args) -> Enqueued:
        return Enqueued(actor.send(*args).message_id)

    def backlog(self) -> int:
        import dramatiq

        broker = dramatiq.get_broker()
        return sum(broker.get_queue_message_counts(queue)[0] for queue in broker.get_declared_queues())

    def state(self, task_id: str) -> dict | None:
        from django_dramatiq.models import DATABASE_LABEL, Task

        status = Task.tasks.using(DATABASE_LABEL).filter(id=task_id).values_list("status", flat=True).first()
        return None if status is None else {"state": self.STATES.get(status, status)}


class Procrastinate(QueueAPI):
    """procrastinate through its Django app (procrastinate.contrib.django): defer() inserts a job row over Django's
    own connection, so in the request's transaction, and NOTIFY wakes a listening worker once it commits. A job's id
    is the row's (an integer); its state and the backlog are read from the jobs table through the app's read-only
    model."""

    name = "procrastinate"
    STATES = {"todo": "queued", "doing": "running", "succeeded": "delivered", "failed": "failed",
              "cancelled": "failed", "aborted": "failed"}
    ID = re.compile(r"[0-9]{1,18}", re.ASCII)
    id_rule = "1 to 18 digits"
    QUEUE = "default"  # every task of the site's; a periodic maintenance task (retry_stalled_jobs) has its own

    def task_id(self, text: str | None) -> str | None:
        return text if text and self.ID.fullmatch(text) else None

    def enqueue(self, task, *args) -> Enqueued:
        """A job takes keyword arguments only: `args` are bound to the task function's parameters."""
        import inspect

        return Enqueued(str(task.defer(**inspect.signature(task.func).bind(*args).arguments)))

    def backlog(self) -> int:
        from django.db.models import Q
        from django.utils import timezone
        from procrastinate.contrib.django.models import ProcrastinateJob

        return (ProcrastinateJob.objects.filter(status="todo", queue_name=self.QUEUE)
                .filter(Q(scheduled_at__isnull=True) | Q(scheduled_at__lte=timezone.now())).count())

    def state(self, task_id: str) -> dict | None:
        from procrastinate.contrib.django.models import ProcrastinateJob

        status = ProcrastinateJob.objects.filter(id=int(task_id)).values_list("status", flat=True).first()
        return None if status is None else {"state": self.STATES.get(status, status)}


APIS = {api.name: api for api in (Huey(), DjangoTasks(), Celery(), Dramatiq(), Procrastinate())}


def queue_api(name: str | None = None) -> QueueAPI:
    """The API `name`, by default the one the settings chose (QUEUE_API)."""
    return APIS[name or settings.QUEUE_API]


def enqueue(job: dict, *args, api: str | None = None, on_commit: bool = False) -> Enqueued:
    """Enqueue `job` (a table of labsite.tasks: its task by API) with `args` through the configured API (or `api`),
    once the transaction commits with `on_commit`. Every enqueue of the site comes here: its time is the request's
    Server-Timing span `enqueue` (labsite.middleware)."""
    chosen = queue_api(api)
    send, task = (chosen.enqueue_on_commit if on_commit else chosen.enqueue), job[chosen.name]
    with span("enqueue"):
        return send(task, *args)


class DesignNotOffered(Exception):
    """The chosen queue API offers no such design (Django's Tasks API has no retries)."""


# The welcome email's designs without a ledger: the name of labsite.tasks' table, and whether it is enqueued on
# commit (names: labsite.tasks may still be loading when this module is imported).
EMAIL_DESIGNS = {"plain": ("WELCOME_EMAIL", False), "retries": ("WELCOME_EMAIL_RETRIES", False),
                 "production": ("WELCOME_EMAIL_PRODUCTION", True)}


def enqueue_email(design: str, to: str) -> Enqueued:
    """Enqueue the welcome email to `to` in one of EMAIL_DESIGNS on the configured API; raises DesignNotOffered when
    that API has no such task (KeyError for an unknown design)."""
    table, on_commit = EMAIL_DESIGNS[design]
    job = getattr(tasks, table)
    if (name := queue_api().name) not in job:
        raise DesignNotOffered(f"the {name} queue API offers no {design} design")
    return enqueue(job, to, on_commit=on_commit)


def backlog() -> int:
    """Tasks waiting for a worker on the configured queue."""
    return queue_api().backlog()


def enqueue_welcome_email(to: str) -> str:
    """Enqueue the welcome email to `to`; returns the task's id."""
    return enqueue(tasks.WELCOME_EMAIL, to).task_id


def enqueue_signup_check(to: str, signup_id: int) -> str:
    """Enqueue the task that looks for Signup `signup_id` and mails `to` what it saw; returns the task's id."""
    return enqueue(tasks.SIGNUP_CHECK, to, signup_id).task_id


def enqueue_noop(count: int) -> int:
    """Enqueue `count` no-op tasks one by one (each its own enqueue, as `count` requests would); returns count."""
    for _ in range(count):
        enqueue(tasks.NOOP)
    return count
