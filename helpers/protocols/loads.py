"""Loads run in the background while faults are injected, and when they have started: each load generator process
picks its own start, later on a busy machine and not together, so a fault timed from a guess can miss a load.
Instead, wait for a sign of each (its first message arrived, its first ledger job written)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from helpers.instruments.loadgen import LoadSpec, run_load
from helpers.stack import Lab


@contextlib.contextmanager
def in_background(specs: dict[str, LoadSpec]) -> Iterator[dict[str, Future]]:
    """Run each load of `specs` in a thread of its own while the block runs (futures of run_load, by key). A block
    left by an exception (Ctrl-C, a failed injection) kills the loads' generator processes first: it ends at once,
    not after the loads' full duration (a long kill episode's is 15 minutes)."""
    processes: set = set()
    with ThreadPoolExecutor(len(specs)) as pool:
        futures = {key: pool.submit(run_load, spec, processes=processes) for key, spec in specs.items()}
        try:
            yield futures
        except BaseException:
            for proc in list(processes):
                proc.kill()
            raise


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
