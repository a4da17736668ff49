"""The state the Dramatiq backend records of a message never goes back: the sender's "enqueued", written once the broker
has the message, leaves alone the state a faster worker recorded first (django-dramatiq's issue 154), and a message no
worker has seen yet is "enqueued". In a fresh process with the Dramatiq backend's settings (no broker is reached)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import django
django.setup()
from django.core.management import call_command
call_command("migrate", "django_dramatiq", verbosity=0)
from dramatiq import Message
from django_dramatiq.models import Task
from labsite.dramatiq_states import TaskStates

def message():
    return Message(queue_name="default", actor_name="do_nothing_dramatiq_actor", args=(), kwargs={}, options={})

first, fresh = message(), message()
Task.tasks.create_or_update_from_message(first, status=Task.STATUS_DONE, actor_name=first.actor_name,
                                         queue_name=first.queue_name)  # the worker ran it before the sender wrote
for sent in (first, fresh):
    TaskStates().after_enqueue(None, sent, None)
print(Task.tasks.get(id=first.message_id).status, Task.tasks.get(id=fresh.message_id).status)
"""


def test_a_state_recorded_by_the_worker_is_not_overwritten_by_the_senders_enqueued(tmp_path):
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
    env = {**inherited, "DJANGO_SETTINGS_MODULE": "labsite.settings", "LAB_RUN_DIR": str(tmp_path),
           "LAB_QUEUE_BACKEND": "dramatiq_rabbitmq"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["done", "enqueued"]
