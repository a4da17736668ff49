"""RQ on Redis with the settings RQ's docs give for a job that must not be lost (the same server, worker and
django-tasks-rq as rq_redis, other settings):

- Retry on every job: a job that raised goes back to the queue while it has retries left ("Retrying Failed Jobs",
  https://python-rq.org/docs/exceptions/#retrying-failed-jobs), at once (an interval needs `--with-scheduler`);
- the same retries rescue a job whose worker died: RQ's maintenance finds it in the StartedJobRegistry once its
  heartbeat has expired and, as the docs say of an AbandonedJobError, fails it, which with retries left requeues it
  (https://python-rq.org/docs/exceptions/#abandonedjoberror,
  https://python-rq.org/docs/results/#dealing-with-interruptions); RQ 3.0's StartedJobRegistry.cleanup retries an
  abandoned job that has retries_left;
- the worker's maintenance every MAINTENANCE_INTERVAL_S s instead of every 600 s (`--maintenance-interval`,
  https://python-rq.org/docs/workers/; django-rq's rqworker has no such option, so a worker class sets it, with
  `--worker-ttl`).

A job's heartbeat lives RQ's job_monitoring_interval (30 s) + 60 s: a dead worker's job is abandoned that long after
its last heartbeat, and found at the next maintenance (measured: sent again 91.5 s after a SIGKILL mid-send). A worker
killed between taking a job and starting it leaves it in the queue's intermediate list instead, which the maintenance
hands back a minute after it first saw it there (about 150 s after the kill). Django's Tasks API offers no per-task
retries, so the queue class adds them to every job (labsite.rq_production). The worker's maintenance every
MAINTENANCE_INTERVAL_S also needs its blocking wait cut to match (worker_ttl - 15 s: 405 s with rqworker's default).
"""

from __future__ import annotations

from helpers.stack.queues import register
from helpers.stack.queues.rq_redis import RqRedis


@register
class RqRedisProduction(RqRedis):
    """A killed worker's job comes back to the queue once its heartbeat has expired (90 s) and a worker's
    maintenance has run: at-least-once (within its retries), so a job can run twice."""

    name = "rq_redis_production"
    label = "RQ, Redis (django-tasks-rq), production settings"
    delivery = "at-least-once"
    in_matrix = False  # notebook 07 measures rq_redis alone
    setting, production_of = "production", RqRedis.name
    retries = 3
    maintenance_interval_s = 5  # short enough to measure (RQ's default: 600)
    heartbeat_ttl_s = 30 + 60  # RQ's job_monitoring_interval + its fixed 60 s
    redelivery_after_s = float(heartbeat_ttl_s + maintenance_interval_s)
    recommended_by = (
        (f"Retry(max={retries}) on every job", "https://python-rq.org/docs/exceptions/#retrying-failed-jobs"),
        ("an abandoned job (dead worker) is failed by the registry cleanup, and retried with retries left",
         "https://python-rq.org/docs/exceptions/#abandonedjoberror"),
        (f"worker maintenance every {maintenance_interval_s} s (--maintenance-interval; default 600), worker TTL "
         f"{maintenance_interval_s + 15} s (--worker-ttl; default 420)", "https://python-rq.org/docs/workers/"),
    )

    def site_env(self) -> dict[str, str]:
        return {**super().site_env(), "LAB_RQ_RETRIES": str(self.retries),
                "LAB_RQ_MAINTENANCE_INTERVAL_S": str(self.maintenance_interval_s)}
