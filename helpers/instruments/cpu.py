"""CPU and memory of the lab's processes: on 2 cores, the server, the workers and the load generator share the
machine, so CPU is reported beside every latency. One way to read a process tree, used by every meter."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

import psutil

from helpers.stack.processes import tree  # the one reading of a process tree, shared with the stack


def cpu_seconds(pids) -> dict[int, float]:
    """CPU seconds (user + system) used so far, per pid, for the trees rooted at `pids`."""
    found = {}
    for pid in pids:
        for proc in tree(pid):
            with contextlib.suppress(psutil.NoSuchProcess):
                times = proc.cpu_times()
                found[proc.pid] = times.user + times.system
    return found


def rss_mb(pids) -> float:
    """Resident memory of the trees rooted at `pids`, in MiB."""
    total = 0
    for pid in pids:
        for proc in tree(pid):
            with contextlib.suppress(psutil.NoSuchProcess):
                total += proc.memory_info().rss
    return total / 2**20


@dataclass
class CpuMeter:
    """Snapshot process trees before and after; `usage()` gives % of one core per part. `parts` maps a part's
    name to its root pids; by default, every process the lab runs (web, consumers, smtp, the queue's servers)."""

    lab: object | None = None
    parts: dict[str, list[int]] | None = None
    started: float = 0.0
    before: dict[str, dict[int, float]] = field(default_factory=dict)
    after: dict[str, dict[int, float]] = field(default_factory=dict)
    wall_s: float = 0.0

    def _snapshot(self) -> dict[str, dict[int, float]]:
        parts = self.parts if self.parts is not None else {
            name: [process.pid] for name, process in self.lab.processes.items()}
        return {name: cpu_seconds(pids) for name, pids in parts.items()}

    def __enter__(self) -> CpuMeter:
        self.before = self._snapshot()
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc) -> None:
        self.after = self._snapshot()
        self.wall_s = time.monotonic() - self.started

    def usage(self) -> dict[str, float]:
        """Percent of one core per part (200% is the whole 2-core machine)."""
        result = {}
        for name, after in self.after.items():
            before = self.before.get(name, {})
            used = sum(t - before.get(pid, 0.0) for pid, t in after.items())
            result[f"cpu_{name}_pct"] = 100 * used / self.wall_s if self.wall_s else 0.0
        return result


def idle_cpu_percent(pids: list[int], seconds: float = 5.0) -> float:
    """CPU use of idle process trees, in percent of one core, over `seconds` of wall time."""
    with CpuMeter(parts={"idle": pids}) as meter:
        time.sleep(seconds)
    return meter.usage()["cpu_idle_pct"]
