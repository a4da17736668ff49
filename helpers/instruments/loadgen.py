"""The load generator: its own process, asyncio on uvloop, keep-alive where the server allows it.

Two modes:
- closed loop: N users, each sends a request, waits for the answer, thinks, repeats. The server's speed sets
  the pace, so a stalled server silently sends fewer requests (what most tools measure).
- open loop: requests are due at precomputed times (constant or Poisson arrivals at rate λ), whatever the
  server does. Latency counts from the moment a request was *due*, so a stall shows up in full (no
  coordinated omission, as in wrk2); service time (from the moment it was sent) and the generator's own
  scheduling lag (sent - due) are kept beside it.

Every request is recorded (due, sent, first byte, done, status, error) and summarised in HDR histograms,
which merge across processes and trials without averaging percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import numpy as np
from hdrh.histogram import HdrHistogram

# pandas (and helpers.stack) are imported where they are used, not here: a generator process imports this module
# before it can say it is ready, and a load waits for that (about 1 s longer with pandas and pyarrow).
if TYPE_CHECKING:
    import pandas as pd

HISTOGRAM_RANGE_US = (1, 300_000_000)  # 1 µs .. 300 s
LATE_AFTER_MS = 10.0  # a request sent this late was not sent on time (k6 would call it dropped)
ERRORS = ["", "connect", "reset", "timeout", "protocol"]


@dataclass
class LoadSpec:
    host: str
    port: int
    path: str = "/noop/"
    method: str = "GET"
    form: dict[str, str] = field(default_factory=dict)  # values may hold "{i}", the request's number
    body: str | None = None  # sent as it is instead of a form (e.g. JSON; may hold "{i}"), with content_type
    content_type: str = "application/json"
    mode: str = "open"  # "open" or "closed"
    rate: float = 100.0  # open loop: requests per second
    arrival: str = "poisson"  # open loop: "poisson" or "constant"
    connections: int = 16  # closed loop: users; open loop: the most connections at once
    think_time_s: float = 0.0  # closed loop
    duration_s: float = 10.0  # measured part
    warmup_s: float = 1.0  # sent first, then left out of every figure
    timeout_s: float = 60.0
    seed: int = 1
    processes: int = 2  # generator processes sharing the load (like wrk's threads); histograms merge
    cpus: list[int] | None = None  # the cores the generator may use (None: any), to keep it off the server's


def arrival_times(rate: float, seconds: float, arrival: str, seed: int) -> np.ndarray:
    """Due times (s from start) for an open loop."""
    n = int(round(rate * seconds))
    if arrival == "constant":
        return np.arange(n) / rate
    if arrival == "poisson":
        gaps = np.random.default_rng(seed).exponential(1.0 / rate, size=int(n * 1.2) + 50)
        times = np.cumsum(gaps) - gaps[0]
        return times[times < seconds]
    raise ValueError(f"arrival must be 'poisson' or 'constant', not {arrival!r}")


class Request:
    """Encodes the spec's request once (or per number when the form holds "{i}")."""

    def __init__(self, spec: LoadSpec):
        self.spec = spec
        self.varies = any("{i}" in v for v in [*spec.form.values(), spec.body or ""])
        self.fixed = self.encode(0)

    def encode(self, i: int) -> bytes:
        s = self.spec
        if s.body is not None:
            body, content_type = s.body.replace("{i}", str(i)).encode(), s.content_type
        else:
            body = urlencode({k: v.format(i=i) for k, v in s.form.items()}).encode() if s.form else b""
            content_type = "application/x-www-form-urlencoded"
        head = f"{s.method} {s.path} HTTP/1.1\r\nHost: {s.host}:{s.port}\r\nUser-Agent: tasks-lab-loadgen\r\n"
        if s.method in ("POST", "PUT", "PATCH"):
            head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        return (head + "\r\n").encode() + body

    def bytes_for(self, i: int) -> bytes:
        return self.encode(i) if self.varies else self.fixed


class Connection(asyncio.Protocol):
    """One HTTP/1.1 connection, one request at a time; parses just enough to know when a response ends."""

    def __init__(self):
        self.transport = None
        self.reusable = False
        self.lost = False
        self._reset()

    def _reset(self):
        self.buffer = bytearray()
        self.header_end = -1
        self.length = None
        self.status = 0
        self.close_after = False
        self.first_byte = 0.0
        self.waiter: asyncio.Future | None = None

    def connection_made(self, transport):
        self.transport = transport

    def send(self, raw: bytes) -> asyncio.Future:
        self._reset()
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return self.waiter

    def data_received(self, data):
        if not self.first_byte:
            self.first_byte = time.perf_counter()
        self.buffer += data
        if self.header_end < 0:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            self.header_end = end + 4
            head = bytes(self.buffer[:end]).lower()
            try:
                self.status = int(head[9:12])
            except ValueError:
                return self._finish("protocol")
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name == b"content-length":
                    self.length = int(value)
                elif name == b"connection" and b"close" in value:
                    self.close_after = True
        if self.length is not None and len(self.buffer) - self.header_end >= self.length:
            self.reusable = not self.close_after
            self._finish("")

    def connection_lost(self, exc):
        self.lost = True
        self.reusable = False
        if self.waiter is not None and not self.waiter.done():
            complete = self.header_end >= 0 and self.length is None  # close-delimited body
            self._finish("" if complete else "reset")

    def time_out(self):
        self.reusable = False
        self._finish("timeout")
        if self.transport is not None:
            self.transport.abort()

    def _finish(self, error: str):
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(error)


class Generator:
    """One process's share of the load: every `processes`-th due time, or its share of the users."""

    def __init__(self, spec: LoadSpec, part: int, start_at: float):
        self.spec = spec
        self.part = part
        self.start_at = start_at
        self.request = Request(spec)
        self.idle: list[Connection] = []
        self.open_connections = 0
        self.connection_freed = asyncio.Event()
        self.rows: list[tuple] = []

    async def _connection(self) -> Connection:
        while True:
            while self.idle:
                conn = self.idle.pop()
                if not conn.lost:
                    return conn
                self.open_connections -= 1
            if self.open_connections < self.spec.connections:
                self.open_connections += 1
                try:
                    _, conn = await asyncio.get_running_loop().create_connection(
                        Connection, self.spec.host, self.spec.port)
                except BaseException:
                    self.open_connections -= 1
                    raise
                return conn
            self.connection_freed.clear()
            await self.connection_freed.wait()

    def _release(self, conn: Connection):
        if conn.reusable and not conn.lost:
            self.idle.append(conn)
        else:
            self.open_connections -= 1
            if conn.transport is not None:
                conn.transport.close()
        self.connection_freed.set()

    async def one(self, i: int, due: float) -> None:
        """Send request i, due at `due` (perf_counter seconds), and record it."""
        raw = self.request.bytes_for(i)
        try:
            conn = await self._connection()
        except OSError:
            now = time.perf_counter()
            self.rows.append((i, due, now, 0.0, now, 0, 1))
            return
        sent = time.perf_counter()
        waiter = conn.send(raw)
        # A plain timer is far cheaper per request than asyncio.wait_for (no extra task).
        timer = asyncio.get_running_loop().call_later(self.spec.timeout_s, conn.time_out)
        error = await waiter
        timer.cancel()
        done = time.perf_counter()
        self.rows.append((i, due, sent, conn.first_byte or done, done, conn.status, ERRORS.index(error)))
        self._release(conn)

    async def _until(self, moment: float) -> None:
        delay = moment - time.perf_counter()
        if delay > 0.0005:
            await asyncio.sleep(delay)

    async def open_loop(self) -> None:
        s = self.spec
        due_times = arrival_times(s.rate, s.warmup_s + s.duration_s, s.arrival, s.seed)
        loop = asyncio.get_running_loop()
        tasks = set()
        for i in range(self.part, len(due_times), s.processes):
            due = self.start_at + due_times[i]
            await self._until(due)
            task = loop.create_task(self.one(i, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=s.timeout_s + 5)

    async def closed_loop(self) -> None:
        s = self.spec
        users = range(self.part, s.connections, s.processes)
        end = self.start_at + s.warmup_s + s.duration_s
        counter = iter(range(self.part, 10**12, s.processes))
        rng = np.random.default_rng(s.seed + self.part)

        async def user():
            while (now := time.perf_counter()) < end:
                await self.one(next(counter), now)
                if s.think_time_s:
                    await asyncio.sleep(rng.exponential(s.think_time_s))

        await self._until(self.start_at)
        await asyncio.gather(*(user() for _ in users))

    async def run(self) -> None:
        await (self.open_loop() if self.spec.mode == "open" else self.closed_loop())
        for conn in self.idle:
            conn.transport.close()

    def raw_records(self) -> np.ndarray:
        """One row per request, RAW_COLUMNS, as float64 (exact for the counters and codes too)."""
        return np.array(self.rows, dtype=np.float64).reshape(-1, len(RAW_COLUMNS))


RAW_COLUMNS = ["i", "due", "sent", "first_byte", "done", "status", "error_code"]
RAW_INTEGERS = {"i": "int64", "status": "int64", "error_code": "int64"}


def read_raw(path: Path) -> pd.DataFrame:
    """A generator process's raw records (Generator.raw_records, saved with numpy) as a frame."""
    import pandas as pd

    return pd.DataFrame(np.load(path), columns=RAW_COLUMNS).astype(RAW_INTEGERS)


def records_from_raw(raw: pd.DataFrame, spec: LoadSpec, start_at: float) -> pd.DataFrame:
    """Times become ms from the common start; latency counts from `due`, service from `sent`."""
    frame = raw.sort_values("i", ignore_index=True)
    for col in ("due", "sent", "first_byte", "done"):
        frame[f"{col}_ms"] = (frame.pop(col) - start_at) * 1e3
    # Counted from whichever came first: a request sent a fraction of a ms early (timer granularity) is not
    # credited for it, so latency is never below service time.
    frame["latency_ms"] = frame["done_ms"] - np.minimum(frame["due_ms"], frame["sent_ms"])
    frame["service_ms"] = frame["done_ms"] - frame["sent_ms"]
    frame["ttfb_ms"] = frame["first_byte_ms"] - frame["sent_ms"]
    frame["lag_ms"] = frame["sent_ms"] - frame["due_ms"]  # signed; summaries use its size
    frame["error"] = frame.pop("error_code").map(dict(enumerate(ERRORS))).replace("", None)
    frame["warmup"] = frame["due_ms"] < spec.warmup_s * 1e3
    return frame


def histogram(values_ms) -> HdrHistogram:
    hist = HdrHistogram(*HISTOGRAM_RANGE_US, 3)
    for v in values_ms:
        hist.record_value(max(1, min(int(v * 1000), HISTOGRAM_RANGE_US[1])))
    return hist


def in_flight_mean(frame: pd.DataFrame, start_ms: float, end_ms: float) -> float:
    """Requests outstanding (sent, not yet done), averaged over [start_ms, end_ms]: what the generator really kept
    in flight. A generator short of CPU keeps fewer than its connections, and so measures a lower latency."""
    sent, done = frame["sent_ms"].clip(start_ms, end_ms), frame["done_ms"].clip(start_ms, end_ms)
    return float((done - sent).clip(lower=0).sum() / (end_ms - start_ms))


def summarize(frame: pd.DataFrame, spec: LoadSpec) -> dict:
    measured = frame[~frame["warmup"]]
    ok = measured[measured["error"].isna()]
    window_s = spec.duration_s
    window_end_ms = (spec.warmup_s + spec.duration_s) * 1e3
    in_window = frame["error"].isna() & frame["done_ms"].between(spec.warmup_s * 1e3, window_end_ms)
    summary = {
        "mode": spec.mode, "path": spec.path, "method": spec.method, "connections": spec.connections,
        "asked_rate": spec.rate if spec.mode == "open" else None,
        "requests": len(measured),
        "achieved_rate": len(measured) / window_s,  # sent per second in the measured window
        "throughput": int(in_window.sum()) / window_s,  # answers completed inside the window, per second
        "errors": int(measured["error"].notna().sum()),
        "non_2xx": int((~ok["status"].between(200, 299)).sum()),
        "late": int((measured["lag_ms"] > LATE_AFTER_MS).sum()),
        "early_by_ms_max": float(max(0.0, -measured["lag_ms"].min())) if len(measured) else 0.0,
        "in_flight_mean": in_flight_mean(frame, spec.warmup_s * 1e3, window_end_ms),
        # Little's law, L = throughput x mean time in the system: it must agree with in_flight_mean
        "littles_law_in_flight": float(frame.loc[in_window, "service_ms"].mean() / 1e3 * in_window.sum() / window_s)
        if in_window.any() else 0.0,
        "histograms": {},
    }
    for name in ("latency_ms", "service_ms", "ttfb_ms", "lag_ms"):
        hist = histogram(ok[name].abs().to_numpy())
        summary["histograms"][name] = base64.b64encode(hist.encode()).decode() if len(ok) else None
        for p in (50, 90, 99, 99.9):
            summary[f"{name[:-3]}_p{p:g}_ms"] = hist.get_value_at_percentile(p) / 1000 if len(ok) else None
        summary[f"{name[:-3]}_max_ms"] = hist.get_max_value() / 1000 if len(ok) else None
    return summary


def decode_histogram(encoded: str) -> HdrHistogram:
    return HdrHistogram.decode(base64.b64decode(encoded))


@dataclass
class LoadResult:
    spec: LoadSpec
    summary: dict
    records: pd.DataFrame
    generator_cpu_s: float
    start_epoch: float = float("nan")  # the common start (records' 0 ms) as epoch seconds, to meet other clocks

    @property
    def measured(self) -> pd.DataFrame:
        return self.records[~self.records["warmup"]]


def run_load(spec: LoadSpec, records_path: Path | None = None,
             at_start: Callable[[], object] | None = None, processes: set | None = None) -> LoadResult:
    """Run one load in `spec.processes` generator processes; merge their records. `at_start` is called at the
    moment the processes are told to start (another tool started beside it meets the server at the same time).
    `processes`, when given, holds the generator processes while they run, so that another thread can kill them
    (helpers.protocols.loads.in_background).

    Each process reports when it has imported everything; only then is the common start time chosen, so a
    slow start on a busy machine delays the run instead of making its first requests late."""
    import pandas as pd

    from helpers.stack.processes import DIE_WITH_PARENT

    with tempfile.TemporaryDirectory(prefix="loadgen-") as scratch:
        spec_path = Path(scratch) / "spec.json"
        spec_path.write_text(json.dumps(asdict(spec)))
        parts = []
        try:
            for part in range(spec.processes):
                out, errors = Path(scratch) / f"part-{part}.npy", Path(scratch) / f"part-{part}.err"
                with open(errors, "w") as stderr:
                    proc = subprocess.Popen(
                        [sys.executable, "-m", "helpers.instruments.loadgen", "--spec", str(spec_path),
                         "--records", str(out), "--part", str(part)],
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True,
                        preexec_fn=DIE_WITH_PARENT)
                parts.append((proc, out, errors))
                if processes is not None:
                    processes.add(proc)
            for proc, _, errors in parts:
                if proc.stdout.readline().strip() != "ready":
                    proc.wait()
                    raise RuntimeError(f"load generator failed to start:\n{errors.read_text()[-3000:]}")
            start_at = time.perf_counter() + 0.05
            start_epoch = time.time() + 0.05  # the same moment on the wall clock (the SMTP server's records use it)
            if at_start is not None:
                at_start()
            for proc, _, _ in parts:
                proc.stdin.write(f"{start_at!r}\n")
                proc.stdin.close()
            raw, cpu_s, cpus = [], 0.0, set()
            for proc, out, errors in parts:
                stdout = proc.stdout.read()
                if proc.wait() != 0:
                    raise RuntimeError(f"load generator failed ({proc.returncode}):\n{errors.read_text()[-3000:]}")
                report = json.loads(stdout.strip().splitlines()[-1])
                cpu_s += report["generator_cpu_s"]
                cpus.update(report["cpus"])
                raw.append(read_raw(out))
        finally:  # a failed or killed generator ends its load: no other process of it is left running
            for proc, _, _ in parts:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
                if processes is not None:
                    processes.discard(proc)

    records = records_from_raw(pd.concat(raw, ignore_index=True), spec, start_at)
    if records_path is not None:
        records.to_parquet(records_path, index=False)
    summary = summarize(records, spec)
    summary["generator_cpu_s"] = cpu_s
    summary["generator_cpus"] = sorted(cpus)  # the cores its processes were allowed
    return LoadResult(spec, summary, records, cpu_s, start_epoch)


def main() -> None:
    parser = argparse.ArgumentParser(description="Run one share of a load.")
    parser.add_argument("--spec", type=Path, required=True, help="the LoadSpec as JSON")
    parser.add_argument("--records", type=Path, required=True)
    parser.add_argument("--part", type=int, default=0)
    args = parser.parse_args()
    spec = LoadSpec(**json.loads(args.spec.read_text()))
    if spec.cpus:
        os.sched_setaffinity(0, spec.cpus)
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    print("ready", flush=True)
    start_at = float(sys.stdin.readline())  # perf_counter time, common to every process of the load
    generator = Generator(spec, args.part, start_at)
    before = resource.getrusage(resource.RUSAGE_SELF)
    runner(generator.run())
    after = resource.getrusage(resource.RUSAGE_SELF)  # the load's own CPU, imports left out
    with open(args.records, "wb") as out:  # a file object: np.save would add ".npy" to a path without it
        np.save(out, generator.raw_records())
    cpu_s = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    print(json.dumps({"generator_cpu_s": cpu_s, "requests": len(generator.rows),
                      "cpus": sorted(os.sched_getaffinity(0))}))


if __name__ == "__main__":
    main()
