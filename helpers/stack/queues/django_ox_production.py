"""django-ox on PostgreSQL with the lease django-ox's own kill test ran with (the same server and worker as
django_ox, other settings):

- LOCK_TIMEOUT = 15 s: "seconds a worker may stop renewing its lease" before the reaper hands its RUNNING task back
  to the queue (the README's Configuration and Worker CLI `--lock-timeout`, https://pypi.org/project/django-ox/;
  the lease, https://oxpull.com/django-ox/production/#what-the-lease-guarantees-precisely). Its published kill test
  ran "package defaults except LOCK_TIMEOUT of 15 seconds" (https://oxpull.com/django-ox/benchmarks/); the default,
  300 s, leaves a dead worker's task waiting five minutes. With 15 s a worker renews its leases every 5 s
  (LOCK_TIMEOUT / 3) and its reaper looks every 7.5 s (LOCK_TIMEOUT / 2, django_ox.worker).

MAX_ATTEMPTS (3) and the retry backoff stay at their defaults, which the docs give as the recommended ones.
"""

from __future__ import annotations

from helpers.stack.queues import register
from helpers.stack.queues.django_ox import DjangoOx


@register
class DjangoOxProduction(DjangoOx):
    """A killed worker's lease is LOCK_TIMEOUT old at most that long after the kill, and a live worker's reaper finds
    it within REAP_INTERVAL_S more: at-least-once, within the attempt budget."""

    name = "django_ox_production"
    label = "django-ox, PostgreSQL, production settings"
    setting, production_of = "production", DjangoOx.name
    lock_timeout_s = 15.0
    reap_interval_s = lock_timeout_s / 2  # django-ox's own: min(30, max(LOCK_TIMEOUT / 2, 1))
    redelivery_after_s = lock_timeout_s + reap_interval_s
    recommended_by = (
        (f"LOCK_TIMEOUT = {lock_timeout_s:g} s (default 300; its kill test's value)",
         "https://oxpull.com/django-ox/benchmarks/"),
        ("a reaper in every worker returns a task whose lease expired",
         "https://oxpull.com/django-ox/production/#what-the-lease-guarantees-precisely"),
    )

    def site_env(self) -> dict[str, str]:
        return {**super().site_env(), "LAB_OX_LOCK_TIMEOUT_S": str(self.lock_timeout_s)}
