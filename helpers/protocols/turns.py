"""Labs side by side, taking turns: one lab per backend, alike but for `queue_backend`, each experiment run on them
in alternating order (A B, then B A) so that all meet the same machine."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from helpers.stack import Lab


@contextlib.contextmanager
def side_by_side(run_dir: Path, backends, **config) -> Iterator[dict[str, Lab]]:
    """One lab per backend, running at once with the same settings (each in its own sub-folder); stopped
    together. Started one after the other, from this thread: every server dies with the thread that started it
    (helpers.stack.processes.DIE_WITH_PARENT), so a pool thread must not start them."""
    labs = {}
    try:
        for backend in backends:
            labs[backend] = Lab(run_dir=Path(run_dir) / backend, queue_backend=backend, **config).start()
        yield labs
    finally:
        for lab in reversed(labs.values()):
            lab.stop()


def turn_order(labs: dict, turn: int) -> list[str]:
    """The labs' names in the order of this turn: A B, then B A, ... so none always goes first."""
    names = list(labs)
    return names if turn % 2 == 0 else names[::-1]


def interleaved(labs: dict[str, Lab], turns: int = 1) -> Iterator[tuple[int, str, Lab]]:
    """(turn, backend, lab) for every turn, in turn_order."""
    for turn in range(turns):
        for backend in turn_order(labs, turn):
            yield turn, backend, labs[backend]


def stop_all(labs: dict[str, Lab]) -> None:
    """Stop every lab at once (stopping only signals and waits, from any thread); side_by_side's own stop then
    finds nothing left to stop."""
    with ThreadPoolExecutor(len(labs)) as pool:
        list(pool.map(Lab.stop, labs.values()))
