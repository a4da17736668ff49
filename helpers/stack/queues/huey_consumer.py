"""What the Huey backends share: the consumer (djhuey's run_huey) and its polling options, or the blocking wait
of a storage that has one."""

from __future__ import annotations

import signal
import sys
from typing import ClassVar

from helpers.stack.queues import QueueBackend

HUEY_NAME = "labsite"  # settings.HUEY["name"]: the storages name their keys, tables and channels after it

class HueyConsumer(QueueBackend):
    """Huey removes a task from its storage as a worker picks it up and acknowledges nothing: a worker killed
    mid-task loses it (its maintainer says so; notebook 05 measures it)."""

    delivery = "at-most-once"
    worker_ready_line = "Huey consumer started"
    worker_stop_signal = signal.SIGINT  # Huey's graceful shutdown: running tasks finish
    # every worker polls at least every 20 ms, whatever the idle time (Huey's defaults: 0.1 s, x1.15, up to 10 s)
    tuned_worker_config = {"consumer_initial_delay_s": 0.005, "consumer_max_delay_s": 0.02, "consumer_backoff": 1.15}

    def site_env(self) -> dict[str, str]:
        c = self.lab.config
        return {**super().site_env(), "LAB_HUEY_SYNC": c.huey_synchronous,
                "LAB_HUEY_LOG_LEVEL": c.huey_log_level}

    def worker_argv(self) -> list[str]:
        c = self.lab.config
        return [sys.executable, "-m", "django", "run_huey",
                "--workers", str(c.consumer_workers), "--worker-type", c.consumer_worker_type,
                "--delay", str(c.consumer_initial_delay_s), "--max-delay", str(c.consumer_max_delay_s),
                "--backoff", str(c.consumer_backoff), *([] if c.huey_health_check else ["--disable-health-check"])]


class BlockingHueyConsumer(HueyConsumer):
    """Huey on a storage whose dequeue blocks (Redis: BRPOP; PostgreSQL: LISTEN for the enqueue's NOTIFY): an idle
    worker waits there up to the lab's redis_read_timeout_s, then again, instead of polling; a stop waits up to
    that long. The site's settings read the timeout from `read_timeout_variable`."""

    blocking_pickup = True
    tuned_worker_config = {}  # the pop returns when a task is pushed: no polling to tune
    read_timeout_variable: ClassVar[str]

    def site_env(self) -> dict[str, str]:
        return {**super().site_env(), self.read_timeout_variable: str(self.lab.config.redis_read_timeout_s)}
