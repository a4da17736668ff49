"""The settings of each backend quick mode starts no lab for (tests/stack_backends.py), in a fresh process as a worker
loads them: Django sets up with its apps, the site's tasks declare themselves on its queue API, the dispatch table
can count that API's backlog, the worker's command exists, and a Celery backend's app carries its settings (the
production ones among them). In full mode every such backend runs on the real stack instead, and nothing is left
here."""

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from helpers.stack.lab import LabConfig
from helpers.stack.queues import backend_class
from tests.stack_backends import settings_only

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import json
import django
django.setup()
from django.conf import settings
from django.core.management import get_commands
from labsite import dispatch, tasks
api = dispatch.queue_api()
found = {"api": api.name, "commands": sorted(get_commands())}
if api.name == "django_tasks":
    from django.tasks import default_task_backend
    found["backlog_counted"] = settings.TASKS["default"]["BACKEND"] in dispatch.BACKLOG
    found["tasks_on_backend"] = isinstance(tasks.WELCOME_EMAIL["django_tasks"], default_task_backend.task_class)
if api.name == "celery" or "CELERY_BROKER_URL" in dir(settings):
    from labsite.celery import app
    found["celery"] = {"transport": app.connection_for_write().transport_cls, "acks_late": app.conf.task_acks_late,
                       "reject_on_worker_lost": app.conf.task_reject_on_worker_lost,
                       "prefetch_multiplier": app.conf.worker_prefetch_multiplier}
print(json.dumps(found))
"""

# What the Celery backends' apps must carry: Celery's defaults, or the settings its docs recommend for production
CELERY = {
    "celery_rabbitmq": {"transport": "amqp", "acks_late": False, "reject_on_worker_lost": None,
                        "prefetch_multiplier": 4},
    "celery_rabbitmq_production": {"transport": "amqp", "acks_late": True, "reject_on_worker_lost": True,
                                   "prefetch_multiplier": 1},
    "django_tasks_celery": {"transport": "redis", "acks_late": False, "reject_on_worker_lost": None,
                            "prefetch_multiplier": 4},
    "django_tasks_celery_production": {"transport": "redis", "acks_late": True, "reject_on_worker_lost": True,
                                       "prefetch_multiplier": 1},
}


def loaded(backend: str, tmp_path) -> dict:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
    env = {**inherited, "DJANGO_SETTINGS_MODULE": "labsite.settings", "LAB_RUN_DIR": str(tmp_path),
           "LAB_QUEUE_BACKEND": backend, "LAB_REDIS_URL": "redis://127.0.0.1:1/0",
           "LAB_AMQP_URL": "amqp://lab:x@127.0.0.1:1/%2F"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def worker_command(backend: str) -> str:
    """The management command (or, for Celery, the module) the backend's worker runs."""
    argv = backend_class(backend)(SimpleNamespace(config=LabConfig())).worker_argv()
    module = argv[argv.index("-m") + 1]
    return argv[argv.index("-m") + 2] if module == "django" else module


@pytest.mark.parametrize("backend", settings_only() or [pytest.param(None, marks=pytest.mark.skip(
    reason="full mode: every backend runs on the real stack"))])
def test_the_backends_settings_load_and_name_what_its_site_and_worker_need(backend, tmp_path):
    found = loaded(backend, tmp_path)
    command = worker_command(backend)
    assert command == "celery" or command in found["commands"], command
    if found["api"] == "django_tasks":
        assert found["backlog_counted"] and found["tasks_on_backend"], found
    if backend in CELERY:
        assert found["celery"] == CELERY[backend]
