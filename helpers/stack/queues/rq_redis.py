"""RQ on Redis through django-tasks-rq (enqueued with Django's Tasks API): the lab's own redis-server
(helpers.stack.redis_server); an idle worker waits in a blocking move (BLMOVE) off the queue's list."""

from __future__ import annotations

import sys

from helpers.stack import redis_server
from helpers.stack.queues import QueueBackend, register

# RQ keeps a queue's job ids in a list, rq:queue:<name>; a worker moves the id it takes to
# rq:queue:<name>:intermediate, then into the started registry (a sorted set, rq:wip:<name>) while it runs;
# jobs enqueued for later wait in rq:scheduled:<name>.
QUEUE = "default"
QUEUE_KEY = f"rq:queue:{QUEUE}"
STARTED_KEY = f"rq:wip:{QUEUE}"
SCHEDULED_KEY = f"rq:scheduled:{QUEUE}"


@register
class RqRedis(redis_server.UsesRedis, QueueBackend):
    """A worker forks a work horse per job. If the worker dies mid-job, the job stays in the started registry
    until its lease runs out; RQ's registry maintenance then moves it to the failed registry as abandoned and
    runs it again only if the job asked for retries, which django-tasks-rq's jobs do not: at-most-once."""

    name = "rq_redis"
    label = "RQ, Redis (django-tasks-rq)"
    delivery = "at-most-once"
    blocking_pickup = True
    worker_ready_line = "*** Listening on"  # each worker (and each of a pool's) logs it
    queue_key = QUEUE_KEY
    schedule_key = SCHEDULED_KEY

    def worker_argv(self) -> list[str]:
        """One rqworker (SIGTERM: warm shutdown, the running job finishes), or RQ's own pool of consumer_workers
        of them; the Job class is django-tasks-rq's, which runs the Task the job names."""
        workers = self.lab.config.consumer_workers
        command = ["rqworker"] if workers == 1 else ["rqworker-pool", "--num-workers", str(workers)]
        return [sys.executable, "-m", "django", *command, "--job-class", "django_tasks_rq.Job", QUEUE]

    def counts(self) -> dict[str, int | None]:
        """RQ knows the jobs it runs: the started registry (which keeps a killed worker's job until its lease
        runs out)."""
        with self.connection() as conn:
            return {"pending": int(conn.llen(QUEUE_KEY)), "scheduled": int(conn.zcard(SCHEDULED_KEY)),
                    "running": int(conn.zcard(STARTED_KEY))}
