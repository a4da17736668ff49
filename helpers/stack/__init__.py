"""What the lab starts and stops: the site under gunicorn, the SMTP server, a queue backend with its servers and
workers (helpers.stack.queues), each on a free loopback port, all stopped together."""

from helpers.stack.lab import Lab, LabConfig, start_lab

__all__ = ["Lab", "LabConfig", "start_lab"]
