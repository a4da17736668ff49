"""When loads have started: each load generator process picks its own start, later on a busy machine and not
together, so a fault timed from a guess can miss a load. Instead, wait for a sign of each (its first message
arrived, its first ledger job written)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future

from helpers.stack import Lab


def started(signs: Iterable[Callable[[], bool]], loads: Iterable[Future], timeout_s: float = 30.0) -> float:
    """The moment (time.monotonic()) every sign holds; the moment of giving up when a load (a future of run_load)
    ends first or `timeout_s` runs out."""
    signs, loads = list(signs), list(loads)
    began = time.monotonic()
    while time.monotonic() - began < timeout_s and not any(load.done() for load in loads):
        if all(sign() for sign in signs):
            break
        time.sleep(0.02)
    return time.monotonic()


def recipient_arrived(lab: Lab, prefix: str) -> Callable[[], bool]:
    """A sign: the SMTP server has recorded, since this call, a message to a recipient that starts with `prefix`
    (reads only what the record gained)."""
    offset = lab.smtp_record.stat().st_size if lab.smtp_record.exists() else 0
    wanted = prefix.encode()

    def arrived() -> bool:
        if not lab.smtp_record.exists():
            return False
        with open(lab.smtp_record, "rb") as record:
            record.seek(offset)
            return wanted in record.read()

    return arrived
