"""`python -m django enqueue_noop COUNT`: enqueue COUNT no-op tasks through the queue API the settings chose
(labsite.dispatch.enqueue_noop), from outside the web server, and print one JSON line: count, seconds, api.

Why a command: a drain measurement fills the queue while the workers are stopped, then times the workers alone;
the lab runs this with its own environment (Lab.django_env()), so it enqueues exactly where the site would."""

import json
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from labsite import dispatch

MAX_COUNT = 1_000_000


class Command(BaseCommand):
    help = "Enqueue COUNT no-op tasks on the configured queue; prints {count, seconds, api} as JSON."

    def add_arguments(self, parser):
        parser.add_argument("count", type=int)

    def handle(self, *args, count: int, **options):
        if not 0 <= count <= MAX_COUNT:
            raise CommandError(f"count must be between 0 and {MAX_COUNT}")
        started = time.perf_counter()
        dispatch.enqueue_noop(count)
        seconds = time.perf_counter() - started
        self.stdout.write(json.dumps({"count": count, "seconds": seconds, "api": settings.QUEUE_API}))
