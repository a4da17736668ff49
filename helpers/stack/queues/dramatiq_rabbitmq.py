"""Dramatiq on RabbitMQ through django-dramatiq (`manage.py rundramatiq`): the lab's own broker
(helpers.stack.rabbitmq_server); the broker pushes each message to a worker's consumer."""

from __future__ import annotations

import signal
import sys

from helpers.stack import rabbitmq_server
from helpers.stack.queues import QueueBackend, register

QUEUE = "default"  # every actor's queue (dramatiq.actor's queue_name)
DELAY_QUEUE = f"{QUEUE}.DQ"  # messages held for later (a retry's backoff), dramatiq.common.dq_name


@register
class DramatiqRabbitMQ(rabbitmq_server.UsesRabbitMQ, QueueBackend):
    """A worker acknowledges a message once its actor has returned (or failed and been handed to the Retries
    middleware): a worker killed mid-task leaves it unacknowledged, and RabbitMQ hands it to another consumer as soon
    as the dead connection closes: at-least-once, so a task can run twice."""

    # No production twin: Dramatiq's defaults already are what its docs ask for to keep a task. A message is acked
    # once its actor has returned, the Retries middleware retries a failing actor up to 20 times with exponential
    # backoff, and TimeLimit (10 min) and AgeLimit (none) guard the rest (https://dramatiq.io/guide.html, "Message
    # Retries"; https://dramatiq.io/reference.html, "Middleware"); its Best Practices ask for idempotent actors, not
    # other settings (https://dramatiq.io/best_practices.html). The RabbitMQ broker's confirm_delivery is documented as
    # an option (publisher confirms on enqueue, default False), not recommended, and guards a broker crash the lab does
    # not cause.
    name = "dramatiq_rabbitmq"
    label = "Dramatiq, RabbitMQ (django-dramatiq)"
    delivery = "at-least-once"
    blocking_pickup = True
    worker_ready_line = "Worker process is ready for action."  # each worker process logs it
    worker_stop_signal = signal.SIGTERM  # the main process passes it on; running actors finish
    redelivery_after_s = 0.0  # at once, when the broker sees the killed worker's connection close
    queue_name = QUEUE
    in_matrix = False

    def worker_argv(self) -> list[str]:
        """rundramatiq execs Dramatiq's own command: one worker process with consumer_workers threads (Dramatiq's
        model: threads in processes), the site's task modules found by django-dramatiq."""
        return [sys.executable, "-m", "django", "rundramatiq", "--processes", "1",
                "--threads", str(self.lab.config.consumer_workers)]

    def read_scheduled(self, conn) -> int:
        return rabbitmq_server.ready_messages(conn, DELAY_QUEUE)
