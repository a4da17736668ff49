"""What the lab starts and stops: the site under gunicorn, the SMTP server, a queue backend with its servers and
workers (helpers.stack.queues), each on a free loopback port, all stopped together.

Lab and its kin are imported on first use: a process that needs only helpers.stack.processes or the SMTP server
(a load generator, an instrument's child, the SMTP server itself) starts without the lab's imports (pandas among
them), about half a second sooner."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from helpers.stack.lab import Lab, LabConfig, start_lab

__all__ = ["Lab", "LabConfig", "start_lab"]


def __getattr__(name: str):
    if name in __all__:
        from helpers.stack import lab

        return getattr(lab, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
