"""The site's Celery app, as Celery's Django guide writes it: configured from Django's settings (the CELERY_ names,
which the celery_* entries of settings.QUEUE_BACKENDS set), its tasks found in labsite/tasks.py. The worker:
`celery -A labsite worker`."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labsite.settings")

app = Celery("labsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
