"""`python -m django reconcile_jobs`: the job ledger's reconciler, every `--interval` s until SIGTERM/SIGINT.

Why a command the lab runs as its own process rather than a Huey periodic task: Huey's periodic tasks are
crontab-based, resolved to the minute, and run inside the consumer; the lab's faults last seconds, and a
reconciler that dies with the consumer (the very fault it repairs) would also delay itself by that consumer's
restart. `--once` runs a single pass (tests, cron). A pass that fails is logged and the next one runs: the lab
checks that this process is alive while it waits for the ledger to settle. With LAB_LEDGER_RECONCILER=0 (a mutation
test) it runs, and its passes do nothing."""

import logging
import signal
import threading

from django.core.management.base import BaseCommand
from django.db import close_old_connections

from labsite import ledger

log = logging.getLogger("labsite.reconcile")


class Command(BaseCommand):
    help = "Enqueue again the ledger's jobs left pending past the deadline or with an expired lease."

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=float, default=1.0, help="seconds between passes")
        parser.add_argument("--once", action="store_true", help="one pass, then exit")

    def handle(self, *args, interval: float, once: bool, **options):
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        off = "" if ledger.LEDGER["reconciler"] else " (switched off: LAB_LEDGER_RECONCILER=0, every pass does nothing)"
        self.stdout.write(f"reconciler started, every {interval} s{off}", ending="\n")
        self.stdout.flush()
        while True:
            try:
                counts = ledger.reconcile()
            except Exception:  # a locked database, a lost connection: this pass is lost, not the reconciler
                log.exception("reconcile pass failed; the next one runs in %s s", interval)
                close_old_connections()
            else:
                if any(counts.values()):
                    self.stdout.write(f"re-enqueued {counts}", ending="\n")
                    self.stdout.flush()
            if once or stop.wait(interval):
                return
