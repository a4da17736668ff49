"""CPU used by each part of the lab over an experiment: on 2 cores, the server, the consumer and the load
generator share the machine, so CPU is reported beside every latency."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import psutil


def _cpu_seconds(pids) -> dict[int, float]:
    found = {}
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        found[pid] = times.user + times.system
    return found


@dataclass
class CpuMeter:
    """Snapshot the lab's process trees (web, consumer, smtp) before and after; `usage()` gives % of one core."""

    lab: object
    started: float = 0.0
    before: dict[str, dict[int, float]] = field(default_factory=dict)
    after: dict[str, dict[int, float]] = field(default_factory=dict)
    wall_s: float = 0.0

    def _snapshot(self) -> dict[str, dict[int, float]]:
        snapshot = {}
        for name, process in self.lab.processes.items():
            pids = [process.pid] + [child.pid for child in process.descendants()]
            snapshot[name] = _cpu_seconds(pids)
        return snapshot

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
