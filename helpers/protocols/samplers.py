"""Samplers of the server side while a load runs: the web server's peak memory and threads, the whole machine's busy
CPU, and this process's own (the kernel's and the load generator's it waited for)."""

from __future__ import annotations

import contextlib
import resource
import threading

import psutil

from helpers.stack.processes import tree


class ServerSampler:
    """Peak resident memory and thread count of a process tree (the web server's), sampled every `every_s` in a
    thread of this process while a point runs."""

    def __init__(self, pid: int, every_s: float = 0.05):
        self.pid, self.every_s = pid, every_s
        self.rss_mb_before = self.rss_mb_peak = self.threads_peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> tuple[float, int]:
        rss, threads = 0, 0
        for proc in tree(self.pid):
            with contextlib.suppress(psutil.NoSuchProcess):
                rss += proc.memory_info().rss
                threads += proc.num_threads()
        return rss / 2**20, threads

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            rss, threads = self._sample()
            self.rss_mb_peak, self.threads_peak = max(self.rss_mb_peak, rss), max(self.threads_peak, threads)

    def __enter__(self) -> ServerSampler:
        self.rss_mb_before, threads = self._sample()
        self.rss_mb_peak, self.threads_peak = self.rss_mb_before, threads
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def machine_busy_s() -> float:
    """CPU seconds the whole machine has spent busy (every core, every process) since boot."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def kernel_busy_s() -> float:
    """CPU seconds of this process and of its children it has waited for (the load generator, start-up included)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
