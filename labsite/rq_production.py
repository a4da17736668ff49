"""RQ's settings for jobs that must not be lost, as classes django-rq's settings name (settings.rq_redis_production):
a queue whose every job carries RQ's Retry, and a worker that runs RQ's maintenance (the StartedJobRegistry cleanup
that finds a dead worker's abandoned jobs) every LAB_RQ["maintenance_interval_s"] s instead of every 10 minutes.
Imported only by RQ's own code, from those settings."""

from django.conf import settings
from django_rq.queues import DjangoRQ
from rq import Retry, Worker


class RetryingQueue(DjangoRQ):
    """Every job it creates asks for LAB_RQ["retries"] retries, at once (an interval would need the worker's
    scheduler): a job that raised, or that RQ's cleanup found abandoned, goes back to the queue while it has some."""

    def create_job(self, *args, retry: Retry | None = None, **kwargs):
        return super().create_job(*args, retry=retry or Retry(max=settings.LAB_RQ["retries"]), **kwargs)


class MaintainedWorker(Worker):
    """RQ's worker, its maintenance (registry cleanup) every LAB_RQ["maintenance_interval_s"] s. An idle worker runs
    it between two blocking waits for a job, each worker_ttl - 15 s long (405 s with rqworker's --worker-ttl of 420):
    its worker_ttl is cut to match, whatever the command line says, so an idle worker runs it too."""

    def __init__(self, *args, **kwargs):
        interval = settings.LAB_RQ["maintenance_interval_s"]
        super().__init__(*args, **{**kwargs, "maintenance_interval": interval, "worker_ttl": interval + 15})
