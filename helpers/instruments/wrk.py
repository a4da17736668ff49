"""Debian's wrk, the independent yardstick for the lab's own load generator."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from helpers.stack.processes import DIE_WITH_PARENT

UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * UNITS_MS[unit]


def parse(output: str) -> dict:
    """Requests/s, the latency distribution wrk prints with --latency, and its error counts."""
    figures = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
               "requests": int(re.search(r"(\d+) requests in", output).group(1))}
    mean = re.search(r"^\s+Latency\s+([\d.]+(?:us|ms|s|m))\s", output, re.MULTILINE)
    if mean:
        figures["mean_ms"] = _ms(mean.group(1))
        # wrk does not count what it keeps in flight: Little's law gives it, throughput x mean latency
        figures["in_flight"] = figures["rps"] * figures["mean_ms"] / 1e3
    for pct, value in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", output, re.MULTILINE):
        figures[f"p{pct}_ms"] = _ms(value)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    figures["socket_errors"] = sum(map(int, errors.groups())) if errors else 0
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    figures["non_2xx"] = int(non_2xx.group(1)) if non_2xx else 0
    return figures


def run(url: str, connections: int, duration_s: float, threads: int = 2, method: str = "GET",
        body: str | None = None, cpus: Sequence[int] | None = None) -> dict:
    """One wrk run; `cpus` keeps it on those cores (taskset). Its figures include the CPU it used (`cpu_s`). wrk dies
    with the thread that started it (a killed notebook kernel takes it along)."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed: `make system-deps` (or apt-get install wrk)")
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration_s:g}s", "--latency", url]
    if cpus:
        argv[:0] = ["taskset", "--cpu-list", ",".join(map(str, cpus))]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        if method != "GET":
            script.write(f'wrk.method = "{method}"\nwrk.body = "{body or ""}"\n'
                         'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n')
            script.flush()
            argv[argv.index("wrk") + 1:argv.index("wrk") + 1] = ["-s", str(Path(script.name))]
        with tempfile.TemporaryFile("w+") as errors:
            process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errors, text=True,
                                       preexec_fn=DIE_WITH_PARENT)
            output = process.stdout.read()
            # wait4 gives this child's own CPU: RUSAGE_CHILDREN would also count any other child reaped meanwhile
            # (a load generator running beside it)
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
            if process.returncode != 0:
                errors.seek(0)
                raise subprocess.CalledProcessError(process.returncode, argv, output, errors.read())
    figures = parse(output)
    figures["cpu_s"] = usage.ru_utime + usage.ru_stime
    return figures
