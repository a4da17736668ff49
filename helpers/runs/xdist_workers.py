"""How many pytest-xdist workers `make test` starts: one per core, and one more when the machine is otherwise idle.

Most of a test's time is spent waiting on the servers it started, so on an idle machine a worker beyond the cores
finishes the suite sooner; on a machine already busy (another job, a core kept busy on purpose) it would only add
contention, and the verdicts must hold there with one worker per core. Like `make -l`, the choice reads the load
before it starts: the share of CPU time other processes used over `window_s`.
"""

from __future__ import annotations

import os
import time

IDLE_BELOW = 0.15  # busy cores (CPU time used / wall time) under which the machine counts as idle


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of every CPU since boot, from /proc/stat (iowait counts as idle)."""
    with open("/proc/stat") as stat:
        fields = [int(n) for n in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def busy_cores(window_s: float = 1.0) -> float:
    """Cores' worth of CPU the machine used over `window_s` (0 to the number of cores)."""
    busy_before, total_before = cpu_times()
    time.sleep(window_s)
    busy_after, total_after = cpu_times()
    cores = os.cpu_count() or 1
    return cores * (busy_after - busy_before) / max(1, total_after - total_before)


def workers(busy: float, cores: int) -> int:
    return cores + 1 if busy < IDLE_BELOW else cores


if __name__ == "__main__":
    print(workers(busy_cores(), os.cpu_count() or 1))
