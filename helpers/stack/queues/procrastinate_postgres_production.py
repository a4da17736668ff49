"""procrastinate on PostgreSQL with its docs' recipe for jobs a dead worker left behind (the same server and worker as
procrastinate_postgres, other settings):

- "Retry stalled jobs": a periodic task that retries every job left "doing" by a worker whose heartbeat stopped
  (JobManager.get_stalled_jobs, then retry_job), with the worker's update_heartbeat_interval and
  stalled_worker_timeout adjusted to its seconds_since_heartbeat, as the recipe's note asks
  (https://procrastinate.readthedocs.io/en/stable/howto/production/retry_stalled_jobs.html; the shutdown guide sends a
  killed worker's jobs there: https://procrastinate.readthedocs.io/en/stable/howto/advanced/shutdown.html).

The docs' values (a heartbeat every 10 s, stalled after 30 s, the task every 10 minutes) would put a recovery past
any run the lab makes; here a heartbeat every HEARTBEAT_S, stalled after STALLED_S, the task every RETRY_EVERY_S (a
cron with procrastinate's seconds field), so a recovery can be measured. The periodic task runs on a worker: it
needs one alive (the lab starts a new one after a kill). It has a queue of its own, which the lab does not count.
"""

from __future__ import annotations

from helpers.stack.queues import register
from helpers.stack.queues.procrastinate_postgres import ProcrastinatePostgres

RECIPE = "https://procrastinate.readthedocs.io/en/stable/howto/production/retry_stalled_jobs.html"


@register
class ProcrastinatePostgresProduction(ProcrastinatePostgres):
    """A killed worker's job stays "doing" until the periodic task finds its worker's heartbeat STALLED_S old, then
    goes back to "todo" for another worker: at-least-once, so a job can run twice."""

    name = "procrastinate_postgres_production"
    label = "procrastinate, PostgreSQL, production settings"
    delivery = "at-least-once"
    setting, production_of = "production", ProcrastinatePostgres.name
    heartbeat_s, stalled_s, retry_every_s = 1.0, 3.0, 2
    # stalled once its last heartbeat (at most heartbeat_s before the kill) is stalled_s old, retried at the next run
    # of the periodic task
    redelivery_after_s = stalled_s + retry_every_s
    recommended_by = (
        (f"periodic retry_stalled_jobs task, every {retry_every_s} s (docs: every 10 minutes)", RECIPE),
        (f"get_stalled_jobs(seconds_since_heartbeat={stalled_s:g}) (docs: 30 s)", RECIPE),
        (f"worker update_heartbeat_interval={heartbeat_s:g} s, stalled_worker_timeout={stalled_s:g} s "
         "(docs: 10 s, 30 s)", RECIPE),
    )

    def site_env(self) -> dict[str, str]:
        return {**super().site_env(), "LAB_PROCRASTINATE_HEARTBEAT_S": str(self.heartbeat_s),
                "LAB_PROCRASTINATE_STALLED_S": str(self.stalled_s),
                "LAB_PROCRASTINATE_RETRY_EVERY_S": str(self.retry_every_s)}
