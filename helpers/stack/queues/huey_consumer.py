"""What both Huey backends share: the consumer (djhuey's run_huey) and its polling options."""

from __future__ import annotations

import signal
import sys

from helpers.stack.queues import QueueBackend


class HueyConsumer(QueueBackend):
    """Huey removes a task from its storage as a worker picks it up and acknowledges nothing: a worker killed
    mid-task loses it (its maintainer says so; notebook 05 measures it)."""

    delivery = "at-most-once"
    worker_ready_line = "Huey consumer started"
    worker_stop_signal = signal.SIGINT  # Huey's graceful shutdown: running tasks finish

    def site_env(self) -> dict[str, str]:
        c = self.lab.config
        return {**super().site_env(), "LAB_HUEY_SYNC": c.huey_synchronous,
                "LAB_HUEY_LOG_LEVEL": c.huey_log_level}

    def worker_argv(self) -> list[str]:
        c = self.lab.config
        return [sys.executable, "-m", "django", "run_huey",
                "--workers", str(c.consumer_workers), "--worker-type", c.consumer_worker_type,
                "--delay", str(c.consumer_initial_delay_s), "--max-delay", str(c.consumer_max_delay_s),
                "--backoff", str(c.consumer_backoff)]
