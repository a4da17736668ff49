"""Settings come from LAB_* environment variables so the lab can start each run with its own.

Defaults suit the unit tests and a developer poking at the site; helpers.stack sets every
variable explicitly for a measured run.
"""

import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent
RUN_DIR = Path(os.environ.get("LAB_RUN_DIR", BASE_DIR.parent / "data" / "runs" / "dev"))
RUN_DIR.mkdir(parents=True, exist_ok=True)


def env_flag(name: str, default: bool = False) -> bool:
    return os.environ.get(name, "1" if default else "0").lower() in {"1", "true", "yes", "on"}


# A fresh key per process unless the lab hands one down (it generates one per run): never committed.
SECRET_KEY = os.environ.get("LAB_SECRET_KEY") or secrets.token_urlsafe(50)
DEBUG = env_flag("LAB_DEBUG")
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", "testserver"]

INSTALLED_APPS = [
    "django.contrib.staticfiles",
    "huey.contrib.djhuey",
    "labsite",
]

# Kept short on purpose: every middleware is paid by the no-op baseline and both paths alike. LAB_EXTRA_MIDDLEWARE
# (dotted paths, comma-separated) puts more in front, outermost: e.g. the Server-Timing recipe of
# docs/recipe/server_timing/, which the site does not use otherwise.
MIDDLEWARE = [
    *filter(None, (path.strip() for path in os.environ.get("LAB_EXTRA_MIDDLEWARE", "").split(","))),
    "labsite.middleware.ServerTimingMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Serves /static/ (the sign-up page's scripts) under gunicorn: one dict lookup for every other path.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.middleware.common.CommonMiddleware",
    # The sign-up pages post forms with a token; the JSON machine endpoints are csrf_exempt.
    "django.middleware.csrf.CsrfViewMiddleware",
]

# Static files come from the apps' static/ folders, indexed once at start-up (no collectstatic step).
STATIC_URL = "static/"
WHITENOISE_USE_FINDERS = True

ROOT_URLCONF = "labsite.urls"
WSGI_APPLICATION = "labsite.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": RUN_DIR / "site.sqlite3",
        # The job ledger is written by every web worker, consumer thread and the reconciler at once: WAL lets
        # readers run beside the writer, IMMEDIATE takes the write lock up front (no deadlocked upgrade), and
        # a writer waits up to `timeout` s for the lock instead of failing with "database is locked".
        "OPTIONS": {"init_command": "pragma journal_mode=wal; pragma synchronous=normal;",
                    "transaction_mode": "IMMEDIATE", "timeout": 20},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": []},
    }
]

# The welcome email goes over real SMTP to the lab's own server on loopback (Django 6.1's MAILERS).
MAILERS = {
    "default": {
        "BACKEND": os.environ.get("LAB_EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend"),
        "OPTIONS": {
            "host": "127.0.0.1",
            "port": int(os.environ.get("LAB_SMTP_PORT", "8025")),
            "timeout": float(os.environ.get("LAB_SMTP_TIMEOUT", "30")),
        },
    }
}
DEFAULT_FROM_EMAIL = "lab@tasks-lab.test"

# Django's Tasks API (the *_django_task functions of labsite/tasks.py, POST /djtasks/...): on Huey's own backend, so
# on the Huey backends it enqueues on Huey's queue too. A queue backend of the Tasks API (QUEUE_API "django_tasks")
# sets TASKS in its QUEUE_BACKENDS entry instead; djtasks_immediate is the one way to run every task in the request.
TASKS = {"default": {"BACKEND": "huey.contrib.djhuey.tasks_backend.HueyBackend"}}

# The queue: one entry per backend in QUEUE_BACKENDS, picked by LAB_QUEUE_BACKEND (a new backend is one more entry).
# Each entry returns the settings it sets, from its own LAB_* variables: QUEUE_API, the API the deferred views enqueue
# through (labsite.dispatch: "huey", "django_tasks", "celery", "dramatiq" or "procrastinate"), and that API's own
# settings (HUEY, TASKS, RQ_QUEUES, CELERY_*, DRAMATIQ_BROKER), plus INSTALLED_APPS and DATABASES where the backend
# needs them (on PostgreSQL, Django's database moves to the run's server). The Huey consumer's options come from
# run_huey's command line; the Huey classes are in labsite/huey_classes.py.
def huey_common() -> dict:
    return {"name": "labsite", "immediate": env_flag("LAB_HUEY_IMMEDIATE"), "results": True}


def huey_sqlite() -> dict:
    """Huey on SQLite, in the run's own folder (LAB_HUEY_FILE); LAB_HUEY_SYNC: "off", "normal" or "full"."""
    return {"QUEUE_API": "huey",
            "HUEY": {"huey_class": "labsite.huey_classes.LabSqliteHuey", **huey_common(),
                     "filename": str(Path(os.environ.get("LAB_HUEY_FILE", RUN_DIR / "huey.sqlite3"))),
                     "synchronous": os.environ.get("LAB_HUEY_SYNC", "normal")}}


def huey_redis() -> dict:
    """Huey on Redis at LAB_REDIS_URL (password included): each worker waits in a blocking pop (BRPOP, up to
    LAB_REDIS_READ_TIMEOUT s, then again) instead of polling."""
    return {"QUEUE_API": "huey",
            "HUEY": {"huey_class": "labsite.huey_classes.LabRedisHuey", **huey_common(),
                     "url": os.environ.get("LAB_REDIS_URL", "redis://127.0.0.1:6379/0"),
                     "blocking": True,
                     "read_timeout": float(os.environ.get("LAB_REDIS_READ_TIMEOUT", "1"))}}


def huey_redis_production() -> dict:
    """Huey on Redis with the retries Huey's docs give for a task that fails
    (helpers.stack.queues.huey_redis_production cites them): every Huey task that names no options of its own is
    retried LAB_HUEY_RETRIES times, LAB_HUEY_RETRY_DELAY_S s apart. Huey still acknowledges nothing: a retry follows
    an exception, never a killed consumer."""
    return {**huey_redis(), "LAB_HUEY_TASK_DEFAULTS": {
        "retries": int(os.environ.get("LAB_HUEY_RETRIES", "3")),
        "retry_delay": float(os.environ.get("LAB_HUEY_RETRY_DELAY_S", "1"))}}


def postgres_database() -> dict:
    """Django's database on the run's PostgreSQL server (LAB_PG_*; libpq reads the password from LAB_PG_PASSFILE,
    so it is in no variable): a backend on PostgreSQL moves the site's tables there, and a task row written through
    the database shares the request's transaction. Connections persist: a new one per request would add a
    scram-sha-256 handshake to every request."""
    return {"ENGINE": "django.db.backends.postgresql",
            "HOST": os.environ.get("LAB_PG_HOST", "127.0.0.1"), "PORT": os.environ.get("LAB_PG_PORT", "5432"),
            "NAME": os.environ.get("LAB_PG_NAME", "lab"), "USER": os.environ.get("LAB_PG_USER", "lab"),
            "OPTIONS": {"passfile": os.environ.get("LAB_PG_PASSFILE", "")},
            "CONN_MAX_AGE": 600, "CONN_HEALTH_CHECKS": True}


def postgres_dsn() -> str:
    """The same server as postgres_database, as a libpq connection string (for Huey's PostgresStorage)."""
    db = postgres_database()
    return (f"host={db['HOST']} port={db['PORT']} dbname={db['NAME']} user={db['USER']} "
            f"passfile={db['OPTIONS']['passfile']}")


def huey_postgres() -> dict:
    """Huey on PostgreSQL (PostgresHuey): each worker waits on LISTEN for the NOTIFY an enqueue sends (up to
    LAB_PG_READ_TIMEOUT s, then again) instead of polling. Django's database is the same server."""
    return {"QUEUE_API": "huey", "DATABASES": {"default": postgres_database()},
            "HUEY": {"huey_class": "labsite.huey_classes.LabPostgresHuey", **huey_common(),
                     "dsn": postgres_dsn(), "blocking": True,
                     "read_timeout": float(os.environ.get("LAB_PG_READ_TIMEOUT", "1"))}}


def djtasks_immediate() -> dict:
    """Django's ImmediateBackend through the Tasks API: the task runs inside the request, no queue, no worker."""
    return {"QUEUE_API": "django_tasks",
            "TASKS": {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}}


def djtasks_db_sqlite() -> dict:
    """django-tasks-db's DatabaseBackend through Django's own Tasks API: each task a row of Django's database (here
    the run's SQLite file), which `manage.py db_worker` polls."""
    return {"QUEUE_API": "django_tasks", "INSTALLED_APPS": [*INSTALLED_APPS, "django_tasks_db"],
            "TASKS": {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}}


def djtasks_db_postgres() -> dict:
    """The same on the run's PostgreSQL, Django's database too: the task row is written in the request's
    transaction."""
    return {**djtasks_db_sqlite(), "DATABASES": {"default": postgres_database()}}


def rq_redis() -> dict:
    """RQ on Redis (LAB_REDIS_URL) through django-tasks-rq, enqueued with Django's Tasks API. django-tasks-rq builds
    on the django-tasks backport: its RQBackend's task_class is the backport's Task, and django.tasks.task hands
    out the task_class of the configured backend, so the @task functions of labsite/tasks.py become backport Tasks
    here, with no change to them. That holds because RQBackend is the only Tasks backend of this configuration:
    beside it, django-tasks-db would refuse those Tasks (one process's settings hold one of them, never both)."""
    return {"QUEUE_API": "django_tasks", "INSTALLED_APPS": [*INSTALLED_APPS, "django_rq", "django_tasks_rq"],
            "RQ_QUEUES": {"default": {"URL": os.environ.get("LAB_REDIS_URL", "redis://127.0.0.1:6379/0"),
                                      "DEFAULT_TIMEOUT": 360}},
            "TASKS": {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}}}


def rq_redis_production() -> dict:
    """RQ with the settings its docs give for not losing a job (helpers.stack.queues.rq_redis_production cites them):
    every job asks for LAB_RQ_RETRIES retries (labsite.rq_production.RetryingQueue), which also hand an abandoned job
    (its worker died) back to the queue once RQ's maintenance finds it, and the workers run that maintenance every
    LAB_RQ_MAINTENANCE_INTERVAL_S s (RQ's default: 600)."""
    chosen = rq_redis()
    chosen["RQ_QUEUES"]["default"]["QUEUE_CLASS"] = "labsite.rq_production.RetryingQueue"
    return {**chosen, "RQ": {"WORKER_CLASS": "labsite.rq_production.MaintainedWorker"},
            "LAB_RQ": {"retries": int(os.environ.get("LAB_RQ_RETRIES", "3")),
                       "maintenance_interval_s": int(os.environ.get("LAB_RQ_MAINTENANCE_INTERVAL_S", "600"))}}


# Kombu's Redis transport looks for unacknowledged tasks past their visibility timeout every
# unacked_restore_interval x unacked_restore_throttle s (10 x 10 by default): once a second here, so the timeout is
# what the lab measures. Each look holds a Redis lock that expires after unacked_mutex_expire s (300 by default): a
# worker killed while it held the lock left every task unrestored for five minutes (seen in notebook 05's kills).
# A look takes milliseconds: 5 s.
FAST_RESTORE = {"unacked_restore_interval": 1, "unacked_restore_throttle": 1, "unacked_mutex_expire": 5}


def celery_redis() -> dict:
    """Celery on Redis (LAB_REDIS_URL) with its defaults, as the seed article uses it: the app (labsite/celery.py)
    reads the CELERY_ settings. A worker acknowledges a task as it starts it (acks early), holds up to 4 prefetched
    tasks per process, and keeps no results. Two worker settings can be set per run (unset: Celery's defaults):
    LAB_CELERY_PREFETCH_MULTIPLIER (1 is what Celery's docs recommend with acks_late:
    https://docs.celeryq.dev/en/stable/userguide/optimizing.html#prefetch-limits) and LAB_CELERY_VISIBILITY_TIMEOUT
    (see celery_redis_acks_late)."""
    chosen = {"QUEUE_API": "celery", "CELERY_BROKER_URL": os.environ.get("LAB_REDIS_URL", "redis://127.0.0.1:6379/0")}
    if "LAB_CELERY_PREFETCH_MULTIPLIER" in os.environ:
        chosen["CELERY_WORKER_PREFETCH_MULTIPLIER"] = int(os.environ["LAB_CELERY_PREFETCH_MULTIPLIER"])
    if "LAB_CELERY_VISIBILITY_TIMEOUT" in os.environ:
        chosen["CELERY_BROKER_TRANSPORT_OPTIONS"] = {
            "visibility_timeout": float(os.environ["LAB_CELERY_VISIBILITY_TIMEOUT"]), **FAST_RESTORE}
    return chosen


def celery_redis_acks_late() -> dict:
    """Celery's at-least-once settings: a task is acknowledged when it has finished (acks_late), a task whose worker
    process died is given back (reject_on_worker_lost), and the Redis transport hands an unacknowledged task to a
    worker again after LAB_CELERY_VISIBILITY_TIMEOUT s (an hour by default: short here, so the lab can measure it;
    a task that runs longer than that is handed out twice). Kombu looks for such tasks once a second here
    (FAST_RESTORE)."""
    return {**celery_redis(), "CELERY_TASK_ACKS_LATE": True, "CELERY_TASK_REJECT_ON_WORKER_LOST": True,
            "CELERY_BROKER_TRANSPORT_OPTIONS": {
                "visibility_timeout": float(os.environ.get("LAB_CELERY_VISIBILITY_TIMEOUT", "10")), **FAST_RESTORE}}


def django_tasks_celery() -> dict:
    """Celery through Django's Tasks API: django-tasks-celery's CeleryBackend hands each enqueue to the app of
    labsite/celery.py, configured as its README does (the Redis broker of celery_redis, a Redis result backend with
    extended results, so get_result() can tell the task's state)."""
    url = os.environ.get("LAB_REDIS_URL", "redis://127.0.0.1:6379/0")
    return {**celery_redis(), "QUEUE_API": "django_tasks", "CELERY_RESULT_BACKEND": url,
            "CELERY_RESULT_EXTENDED": True,
            "TASKS": {"default": {"BACKEND": "django_tasks_celery.CeleryBackend",
                                  "OPTIONS": {"CELERY_APP": "labsite.celery.app"}}}}


def django_tasks_celery_production() -> dict:
    """The same with the settings Celery's docs recommend for tasks that must not be lost
    (helpers.stack.queues.django_tasks_celery_production cites them): those of celery_rabbitmq_production, and the
    visibility timeout of celery_redis_acks_late."""
    return {**django_tasks_celery(), "CELERY_TASK_ACKS_LATE": True, "CELERY_TASK_REJECT_ON_WORKER_LOST": True,
            "CELERY_WORKER_PREFETCH_MULTIPLIER": 1,
            "CELERY_BROKER_TRANSPORT_OPTIONS": celery_redis_acks_late()["CELERY_BROKER_TRANSPORT_OPTIONS"]}


def celery_rabbitmq() -> dict:
    """Celery on RabbitMQ (LAB_AMQP_URL, password included), its documented default broker, with its defaults: the
    broker pushes each task to a worker's consumer; a worker acknowledges a task as it starts it and holds up to 4
    prefetched tasks per process; no results are kept."""
    return {"QUEUE_API": "celery", "CELERY_BROKER_URL": os.environ.get("LAB_AMQP_URL", "amqp://127.0.0.1:5672//")}


def celery_rabbitmq_production() -> dict:
    """The settings Celery's docs recommend for tasks that must not be lost (helpers.stack.queues.
    celery_rabbitmq_production cites them): acknowledge once finished, give back a task whose worker process died,
    reserve one task per process at a time."""
    return {**celery_rabbitmq(), "CELERY_TASK_ACKS_LATE": True, "CELERY_TASK_REJECT_ON_WORKER_LOST": True,
            "CELERY_WORKER_PREFETCH_MULTIPLIER": 1}


def dramatiq_rabbitmq() -> dict:
    """Dramatiq on RabbitMQ (LAB_AMQP_URL) through django-dramatiq, with django-dramatiq's defaults (its broker options
    heartbeat=0 and connection_attempts=5, its middleware list) but two changes: no Prometheus middleware (its
    exposition server listens on 0.0.0.0:9191, a fixed port two labs side by side would fight for), and its
    AdminMiddleware, which records each message's state in the site's database, with the fix of its issue 154
    (labsite.dramatiq_states; LAB_DRAMATIQ_TASK_STATES=0 leaves it out, and /tasks/<id>/ then knows no task). A worker
    acknowledges a message once its actor has returned; a failing actor is retried up to 20 times with exponential
    backoff (the Retries middleware's defaults)."""
    url = os.environ.get("LAB_AMQP_URL", "amqp://127.0.0.1:5672/%2F")
    states = ["labsite.dramatiq_states.TaskStates"] if env_flag("LAB_DRAMATIQ_TASK_STATES", True) else []
    return {"QUEUE_API": "dramatiq", "INSTALLED_APPS": [*INSTALLED_APPS, "django_dramatiq"],
            "DRAMATIQ_BROKER": {
                "BROKER": "dramatiq.brokers.rabbitmq.RabbitmqBroker",
                "OPTIONS": {"url": f"{url}?heartbeat=0&connection_attempts=5"},
                "MIDDLEWARE": ["dramatiq.middleware.AgeLimit", "dramatiq.middleware.TimeLimit",
                               "dramatiq.middleware.Callbacks", "dramatiq.middleware.Retries",
                               *states, "django_dramatiq.middleware.DbConnectionsMiddleware"]}}


def vtasks_valkey() -> dict:
    """django-vtasks' Valkey backend through Django's Tasks API, on the run's redis-server (LAB_REDIS_URL; Valkey's
    protocol), with its defaults: an enqueue pushes onto a list on commit (at once outside a transaction), an async
    worker moves each task it takes to a processing list of its own (BLMOVE), no results are kept, and a dead worker's
    tasks go to the dead-letter list (VTASKS_MAX_RESCUES 0)."""
    return {"QUEUE_API": "django_tasks", "INSTALLED_APPS": [*INSTALLED_APPS, "django_vtasks"],
            "TASKS": {"default": {"BACKEND": "django_vtasks.backends.valkey.ValkeyTaskBackend",
                                  "OPTIONS": {"BROKER_URL": os.environ.get("LAB_REDIS_URL",
                                                                           "redis://127.0.0.1:6379/0")}}}}


def vtasks_postgres() -> dict:
    """django-vtasks' database backend through Django's Tasks API, with its defaults, on the run's PostgreSQL, Django's
    database too: an enqueue is one INSERT in the request's transaction, the worker polls (0.1 s to 1 s) and claims
    with SKIP LOCKED, a finished task's row is deleted (no results are kept)."""
    return {"QUEUE_API": "django_tasks", "INSTALLED_APPS": [*INSTALLED_APPS, "django_vtasks", "django_vtasks.db"],
            "DATABASES": {"default": postgres_database()},
            "TASKS": {"default": {"BACKEND": "django_vtasks.backends.db.DatabaseTaskBackend"}}}


def django_ox() -> dict:
    """django-ox's OxBackend through Django's Tasks API, with its defaults, on the run's PostgreSQL, Django's database
    too: an enqueue is one INSERT in the request's transaction; workers claim with SKIP LOCKED under a lease, a reaper
    hands a dead worker's task back after LOCK_TIMEOUT (300 s), and a failing task is retried up to MAX_ATTEMPTS (3)."""
    return {"QUEUE_API": "django_tasks", "INSTALLED_APPS": [*INSTALLED_APPS, "django_ox"],
            "DATABASES": {"default": postgres_database()},
            "TASKS": {"default": {"BACKEND": "django_ox.backend.OxBackend"}}}


def django_ox_production() -> dict:
    """django-ox with the lease its own kill test used (helpers.stack.queues.django_ox_production cites it): a dead
    worker's task is reaped once its lease has gone LAB_OX_LOCK_TIMEOUT_S s unrenewed (300 by default)."""
    chosen = django_ox()
    chosen["TASKS"]["default"]["OPTIONS"] = {"LOCK_TIMEOUT": float(os.environ.get("LAB_OX_LOCK_TIMEOUT_S", "300"))}
    return chosen


def threadmill_redis() -> dict:
    """threadmill's RedisTaskBackend through Django's Tasks API, with its defaults, on LAB_REDIS_URL: an enqueue is one
    pipelined write; a worker takes a task with a Lua script into its running set and acknowledges it once run."""
    return {"QUEUE_API": "django_tasks", "INSTALLED_APPS": [*INSTALLED_APPS, "threadmill"],
            "TASKS": {"default": {"BACKEND": "threadmill.backends.redis.RedisTaskBackend",
                                  "REDIS_URL": os.environ.get("LAB_REDIS_URL", "redis://127.0.0.1:6379/0")}}}


def procrastinate_postgres() -> dict:
    """procrastinate through its Django app, with its defaults, on the run's PostgreSQL, Django's database too (the
    app's connector is Django's "default" alias): a defer inserts a job row in the request's transaction, its trigger
    sends NOTIFY, and a worker LISTENs (polling every 5 s as a fallback). No retries; a killed worker's job stays
    "doing" until someone retries it."""
    return {"QUEUE_API": "procrastinate", "INSTALLED_APPS": ["procrastinate.contrib.django", *INSTALLED_APPS],
            "DATABASES": {"default": postgres_database()}}


def procrastinate_postgres_production() -> dict:
    """procrastinate with its docs' "Retry stalled jobs" recipe (helpers.stack.queues.procrastinate_postgres_production
    cites it): workers send a heartbeat every LAB_PROCRASTINATE_HEARTBEAT_S s, one silent for
    LAB_PROCRASTINATE_STALLED_S s is stalled, and a periodic task (labsite.tasks.retry_stalled_jobs, every
    LAB_PROCRASTINATE_RETRY_EVERY_S s, on a queue of its own) retries its "doing" jobs. The docs' values are 10 s, 30 s
    and every 10 minutes; the lab's are shorter, so that a recovery can be measured."""
    heartbeat_s = float(os.environ.get("LAB_PROCRASTINATE_HEARTBEAT_S", "10"))
    stalled_s = float(os.environ.get("LAB_PROCRASTINATE_STALLED_S", "30"))
    every_s = int(os.environ.get("LAB_PROCRASTINATE_RETRY_EVERY_S", "600"))
    cron = f"*/{every_s // 60} * * * *" if every_s % 60 == 0 else f"* * * * * */{every_s}"  # 6th field: seconds
    return {**procrastinate_postgres(),
            "PROCRASTINATE_WORKER_DEFAULTS": {"update_heartbeat_interval": heartbeat_s,
                                              "stalled_worker_timeout": stalled_s},
            "LAB_RETRY_STALLED_JOBS": {"cron": cron, "seconds_since_heartbeat": stalled_s, "queue": "lab_maintenance"}}


QUEUE_BACKENDS = {"huey_sqlite": huey_sqlite, "huey_redis": huey_redis, "djtasks_immediate": djtasks_immediate,
                  "huey_redis_production": huey_redis_production,
                  "huey_postgres": huey_postgres, "djtasks_db_sqlite": djtasks_db_sqlite,
                  "djtasks_db_postgres": djtasks_db_postgres, "rq_redis": rq_redis,
                  "rq_redis_production": rq_redis_production, "celery_redis": celery_redis,
                  "celery_redis_acks_late": celery_redis_acks_late, "celery_rabbitmq": celery_rabbitmq,
                  "celery_rabbitmq_production": celery_rabbitmq_production, "dramatiq_rabbitmq": dramatiq_rabbitmq,
                  "vtasks_valkey": vtasks_valkey, "django_ox": django_ox,
                  "django_ox_production": django_ox_production,
                  "vtasks_postgres": vtasks_postgres, "django_tasks_celery": django_tasks_celery,
                  "django_tasks_celery_production": django_tasks_celery_production,
                  "procrastinate_postgres": procrastinate_postgres,
                  "procrastinate_postgres_production": procrastinate_postgres_production,
                  "threadmill_redis": threadmill_redis}
QUEUE_BACKEND = os.environ.get("LAB_QUEUE_BACKEND", "huey_sqlite")
if QUEUE_BACKEND not in QUEUE_BACKENDS:
    raise ImproperlyConfigured(f"LAB_QUEUE_BACKEND must be one of {', '.join(QUEUE_BACKENDS)}, "
                               f"not {QUEUE_BACKEND!r}")
# Options of every Huey task that names none of its own (a backend's entry may set retries: huey_redis_production).
LAB_HUEY_TASK_DEFAULTS = {}
# Huey stays configured on every backend (on SQLite unless the backend is Huey's own): djhuey is installed
# everywhere, so labsite.tasks declares Huey's tasks beside the other APIs' (nothing is enqueued there unless chosen).
HUEY = huey_sqlite()["HUEY"]
QUEUE_API = "huey"
globals().update(QUEUE_BACKENDS[QUEUE_BACKEND]())
# The queue APIs whose tasks labsite.tasks declares: the chosen backend's, Huey's (djhuey is installed everywhere)
# and Django's Tasks API (part of Django). No other queue library is imported: a site on Huey carries no Celery,
# Dramatiq or procrastinate, in its memory or its start-up.
TASK_APIS = tuple(dict.fromkeys(("huey", "django_tasks", QUEUE_API)))

# A Huey task's result and its `running:` marker are deleted this long after the task started (the consumer's
# scheduler prunes them: labsite.huey_classes.PruningScheduler); until then /tasks/<id>/ can read them.
LAB_HUEY_RESULT_TTL_S = float(os.environ.get("LAB_HUEY_RESULT_TTL_S", 3600))

# Per-task lifecycle events (enqueued, dequeued, executing, complete/error...) from Huey's own stats recorder,
# switched on per run by LAB_HUEY_STATS. Every process (web workers, consumer, its workers) buffers events and
# a writer thread flushes them every `flush_interval` s into one SQLite file. The recorder keeps only the
# newest `max_events` (2,000 by default, pruned once a minute): far too few for an experiment, so raised here.
RECORD_TASK_EVENTS = env_flag("LAB_HUEY_STATS")
if RECORD_TASK_EVENTS:
    INSTALLED_APPS.append("huey.contrib.djhuey.stats")
HUEY_STATS = {
    "filename": str(Path(os.environ.get("LAB_HUEY_STATS_FILE", RUN_DIR / "huey-stats.sqlite3"))),
    "flush_interval": 0.2,
    "max_events": 10_000_000,
    "retention_hours": 24 * 365,
}

# The job ledger (labsite/ledger.py, POST /email/ledger/; its docstring says what each entry does). A job left
# pending past `deadline_s`, or claimed by a worker whose lease ran out, is enqueued again by the reconciler; a
# transient failure is retried after retry_delay_s x retry_backoff^n, at most retry_max_delay_s; a job is marked
# failed after max_attempts tries, or at once on a permanent (5xx) refusal. Each attempt ends its SMTP exchange
# within the first half of its lease. The four mechanism switches (LAB_LEDGER_PROVIDER_CHECK, _RETRIES,
# _RECONCILER, _ON_COMMIT: "0" turns one off) exist for the mutation tests: every one is on in a real run.
def ledger_settings() -> dict:
    """LAB_LEDGER, from the environment."""
    return {
        "deadline_s": float(os.environ.get("LAB_LEDGER_DEADLINE_S", "10")),
        "lease_s": float(os.environ.get("LAB_LEDGER_LEASE_S", 3 * float(os.environ.get("LAB_SMTP_TIMEOUT", "30")))),
        "retry_delay_s": float(os.environ.get("LAB_LEDGER_RETRY_DELAY_S", "0.5")),
        "retry_backoff": 2.0,
        "retry_max_delay_s": float(os.environ.get("LAB_LEDGER_RETRY_MAX_DELAY_S", "30")),
        "max_attempts": int(os.environ.get("LAB_LEDGER_MAX_ATTEMPTS", "50")),
        **{switch: env_flag(f"LAB_LEDGER_{switch.upper()}", default=True) for switch in LEDGER_SWITCHES},
    }


LEDGER_SWITCHES = ("provider_check", "retries", "reconciler", "on_commit")
LAB_LEDGER = ledger_settings()

# The queue's own retries (labsite.tasks.WELCOME_EMAIL_RETRIES and _PRODUCTION): how many, Huey's fixed delay, Celery's
# backoff factor (an integer: its full jitter draws whole seconds) and the most it waits.
LAB_TASK_RETRIES = {
    "retries": int(os.environ.get("LAB_TASK_RETRIES", "4")),
    "delay_s": float(os.environ.get("LAB_TASK_RETRY_DELAY_S", "1")),
    "backoff_s": int(os.environ.get("LAB_TASK_RETRY_BACKOFF_S", "1")),
    "backoff_max_s": int(os.environ.get("LAB_TASK_RETRY_BACKOFF_MAX_S", "4")),
}
# The email provider's message-status API (the lab's SMTP server serves one): asked before a job whose last
# attempt's outcome is unknown is sent again. Empty: no such API; such a job is sent again, a possible duplicate.
LAB_PROVIDER_STATUS_URL = os.environ.get("LAB_PROVIDER_STATUS_URL", "")
# Bounded backlog: with LAB_MAX_BACKLOG > 0, every deferred endpoint (email, ledger, thumbnail, sign-up) answers 503
# with Retry-After once that many tasks wait in the chosen queue (labsite.dispatch.backlog). 0 (the default) leaves
# the deferred endpoints a pure enqueue.
LAB_MAX_BACKLOG = int(os.environ.get("LAB_MAX_BACKLOG", "0"))
LAB_RETRY_AFTER_S = float(os.environ.get("LAB_RETRY_AFTER_S", "1"))

# Thumbnails: accepted uploads wait in the spool until the job consumes them; caps refuse what is too large.
THUMBNAIL_SPOOL_DIR = RUN_DIR / "uploads"
THUMBNAIL_DIR = RUN_DIR / "thumbnails"
THUMBNAIL_MAX_UPLOAD_BYTES = int(os.environ.get("LAB_UPLOAD_MAX_BYTES", 16 * 2**20))
THUMBNAIL_MAX_PIXELS = int(os.environ.get("LAB_UPLOAD_MAX_PIXELS", 40_000_000))
THUMBNAIL_MAX_SIDE = int(os.environ.get("LAB_UPLOAD_MAX_SIDE", 12_000))
# An upload still spooled this long after it arrived lost its job (labsite.thumbnails.remove_stale_uploads).
LAB_SPOOL_MAX_AGE_S = float(os.environ.get("LAB_SPOOL_MAX_AGE_S", 3600))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {
        "huey": {"handlers": ["stderr"], "level": os.environ.get("LAB_HUEY_LOG_LEVEL", "INFO")},
        # The consumer's start-up line, which the lab waits for, whatever level the per-task lines log at.
        "huey.consumer": {"level": "INFO"},
        "django.request": {"handlers": ["stderr"], "level": "ERROR", "propagate": False},
        # django-vtasks' worker: its start-up line ("Starting worker with concurrency="), which the lab waits for.
        "django_vtasks": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        # django-ox's worker: its start-up line ("Worker <id> starting: queues="), which the lab waits for.
        "django_ox": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        # procrastinate's worker: its start-up line ("Starting worker on"), which the lab waits for.
        "procrastinate": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        # The ledger and its reconciler: every job they could not send or enqueue, in the process's log.
        "labsite": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
    },
}
