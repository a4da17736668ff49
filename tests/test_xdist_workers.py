"""make test's worker count (helpers/runs/xdist_workers.py): one more than the cores only on an idle machine, read
from the real /proc/stat."""

import subprocess

from helpers.runs import xdist_workers


def test_an_idle_machine_gets_a_worker_beyond_its_cores_and_a_busy_one_does_not():
    assert xdist_workers.workers(busy=0.05, cores=2) == 3
    assert xdist_workers.workers(busy=xdist_workers.IDLE_BELOW, cores=2) == 2
    assert xdist_workers.workers(busy=1.0, cores=2) == 2


def test_a_core_kept_busy_is_seen_as_busy():
    busy = subprocess.Popen(["yes"], stdout=subprocess.DEVNULL)
    try:
        assert xdist_workers.busy_cores(window_s=0.5) >= 0.8
    finally:
        busy.kill()
        busy.wait()
