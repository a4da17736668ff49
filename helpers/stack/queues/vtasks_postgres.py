"""django-vtasks' database backend through Django's Tasks API, on the run's PostgreSQL server
(helpers.stack.postgres_server), Django's database too: an enqueue is one INSERT in the request's transaction; the
worker polls the table (0.1 s after a task, doubling to 1 s while idle) and claims with SKIP LOCKED."""

from __future__ import annotations

from helpers.stack import postgres_server
from helpers.stack.queues import register
from helpers.stack.queues.job_table import JobTable
from helpers.stack.queues.vtasks_worker import VtasksWorker


@register
class VtasksPostgres(postgres_server.UsesPostgres, VtasksWorker, JobTable):
    """A task is a row: QUEUED, PROCESSING once a worker claims it, deleted once run (so no result is kept), FAILED
    when it raised."""

    name = "vtasks_postgres"
    label = "django-vtasks, PostgreSQL"
    enqueue_in_transaction = True  # the task row is written over the site's own database connection
    table = "db_queuedtask"  # django_vtasks.db's app label is "db"
    waiting_status, running_status, due_column = "QUEUED", "PROCESSING", "run_after"
