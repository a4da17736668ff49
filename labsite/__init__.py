"""The Django site under test. It knows nothing of the lab's instruments (helpers).

Celery's app (labsite/celery.py) is not imported here, as Celery's Django guide has it: only the Celery backends load
it (labsite.tasks, and the worker's `celery -A labsite`, which finds labsite.celery), so a site on another queue
imports no Celery at all."""
