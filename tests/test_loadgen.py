"""The load generator against a tiny local server whose delays we set: open loop must count the queueing a
stall causes (latency from the moment a request was due), closed loop by its nature does not."""

import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pandas as pd
import pytest

from helpers.instruments.loadgen import LoadSpec, arrival_times, decode_histogram, in_flight_mean, run_load


class StallingHandler(BaseHTTPRequestHandler):
    """Answers after 2 ms, except that every request arriving inside the server's stall window waits until its end.
    One connection per request (like a gunicorn sync worker), so requests queue in the listen backlog."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):
        start, end = self.server.stall_window(time.monotonic())
        now = time.monotonic()
        time.sleep(max(end - now, 0) if start <= now < end else 0.002)
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class OneWorkerServer(HTTPServer):
    """A single-threaded server: one request at a time, like one worker, with a deep listen backlog. Its stall
    is placed from the first request it receives, not from the clock: a generator that starts late on a busy
    machine still meets it at the same point of its run."""

    request_queue_size = 256
    stall_after_s: float | None = None  # None: no stall
    stall_for_s = 0.0
    first_request_at: float | None = None

    def stall_window(self, now: float) -> tuple[float, float]:
        if self.stall_after_s is None:
            return (0.0, 0.0)
        if self.first_request_at is None:
            self.first_request_at = now
        start = self.first_request_at + self.stall_after_s
        return (start, start + self.stall_for_s)


@pytest.fixture
def stalling_server():
    server = OneWorkerServer(("127.0.0.1", 0), StallingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def stall_during_run(server, after_s: float, length_s: float):
    """Stall every request arriving from `after_s` to `after_s + length_s` after the run's first request."""
    server.stall_after_s, server.stall_for_s, server.first_request_at = after_s, length_s, None


def test_arrival_times_have_the_asked_rate():
    for arrival in ("constant", "poisson"):
        times = arrival_times(rate=500, seconds=20, arrival=arrival, seed=3)
        assert abs(len(times) / 20 - 500) / 500 < 0.03
        assert np.all(np.diff(times) >= 0) and times[-1] < 20
    gaps = np.diff(arrival_times(rate=500, seconds=20, arrival="poisson", seed=3))
    assert 0.8 < gaps.std() / gaps.mean() < 1.2  # exponential gaps: coefficient of variation 1


def test_open_loop_counts_the_queue_a_stall_builds(stalling_server):
    stall_during_run(stalling_server, after_s=1.0, length_s=0.5)
    port = stalling_server.server_address[1]
    result = run_load(LoadSpec("127.0.0.1", port, path="/", mode="open", rate=100, arrival="constant",
                               connections=64, duration_s=2.5, warmup_s=0.0, processes=1))
    measured = result.measured
    assert result.summary["errors"] == 0 and len(measured) == 250
    # every request due during the 0.5 s stall waited for its end: about 50 of them, the first ~0.5 s
    assert (measured["latency_ms"] > 100).sum() >= 40
    assert measured["latency_ms"].max() > 400
    # the generator itself sent them on time: the waiting was the server's, not the client's. On a 2-core machine
    # shared with other work its lag p99 reached 21 ms; a tenth of the 500 ms stall still tells the two apart.
    assert result.summary["lag_p99_ms"] < 50


def test_closed_loop_hides_the_same_stall(stalling_server):
    stall_during_run(stalling_server, after_s=1.0, length_s=0.5)
    port = stalling_server.server_address[1]
    result = run_load(LoadSpec("127.0.0.1", port, path="/", mode="closed", connections=1, duration_s=2.5,
                               warmup_s=0.0, processes=1))
    measured = result.measured
    # the one user waited once, then carried on: one slow request, and fewer requests sent
    assert (measured["latency_ms"] > 100).sum() <= 2
    assert measured["latency_ms"].max() > 400
    assert len(measured) < 2.5 / 0.002


def test_records_and_histograms_agree_and_processes_share_the_load(stalling_server):
    port = stalling_server.server_address[1]
    result = run_load(LoadSpec("127.0.0.1", port, path="/", mode="open", rate=200, arrival="poisson",
                               connections=32, duration_s=1.5, warmup_s=0.5, processes=2))
    records = result.records
    assert records["i"].is_unique
    assert set(records["status"]) == {200}
    # Sent on schedule: never more than a timer tick early, and the typical request on time. A single late send is
    # the machine's doing (another job on the two cores delayed one by 60 ms), not the generator's.
    assert result.summary["early_by_ms_max"] < 2
    assert records["lag_ms"].median() < 5
    assert (records["ttfb_ms"] <= records["service_ms"]).all()
    assert (records["latency_ms"] >= records["service_ms"] - 1e-6).all()
    assert records["warmup"].sum() > 0 and result.summary["requests"] == len(result.measured)
    latency = decode_histogram(result.summary["histograms"]["latency_ms"])
    assert latency.get_total_count() == len(result.measured)
    exact_p50 = np.percentile(result.measured["latency_ms"], 50)
    assert latency.get_value_at_percentile(50) / 1000 == pytest.approx(exact_p50, rel=0.05, abs=0.05)


def test_a_refused_connection_is_an_error_not_a_crash():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: connections are refused
        result = run_load(LoadSpec("127.0.0.1", port, path="/", mode="open", rate=50, arrival="constant",
                                   duration_s=0.5, warmup_s=0.0, processes=1))
    assert result.summary["requests"] == 25
    assert result.summary["errors"] == 25
    assert set(result.measured["error"]) == {"connect"}


def test_in_flight_counts_only_the_window_each_request_spent_outstanding():
    # 0-10 ms window: one request outstanding throughout, one for 5 ms of it, one entirely before the window
    frame = pd.DataFrame({"sent_ms": [-5.0, 5.0, -20.0], "done_ms": [15.0, 12.0, -10.0]})
    assert in_flight_mean(frame, 0.0, 10.0) == pytest.approx(1.5)


def test_a_closed_loop_keeps_its_users_in_flight_and_agrees_with_littles_law(stalling_server):
    """Four users against one worker that takes 2 ms: requests wait in its backlog, so nearly four are always in
    flight; the measured count and Little's law (throughput x mean service time) must agree."""
    port = stalling_server.server_address[1]
    summary = run_load(LoadSpec("127.0.0.1", port, path="/", mode="closed", connections=4, duration_s=1.5,
                                warmup_s=0.3, processes=1)).summary
    assert 2.5 < summary["in_flight_mean"] <= 4.0 + 1e-9
    assert summary["littles_law_in_flight"] == pytest.approx(summary["in_flight_mean"], rel=0.1)


def test_a_generator_kept_to_one_core_runs_there(stalling_server):
    """The harness keeps the generator off the server's cores: its processes must run where the spec says."""
    port = stalling_server.server_address[1]
    core = max(os.sched_getaffinity(0))
    summary = run_load(LoadSpec("127.0.0.1", port, path="/", mode="closed", connections=2, duration_s=0.3,
                                warmup_s=0.1, cpus=[core])).summary
    assert summary["generator_cpus"] == [core] and summary["errors"] == 0


def test_wrks_cpu_is_its_own_when_another_child_ends_beside_it(stalling_server):
    """The harness runs wrk beside the load generator's processes: the CPU a child spent and was reaped with while
    wrk ran must not be counted as wrk's."""
    from concurrent.futures import ThreadPoolExecutor

    from helpers.instruments import wrk

    url = f"http://127.0.0.1:{stalling_server.server_address[1]}/"
    with ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(wrk.run, url, 1, 2, threads=1)
        busy = "import time\nend = time.process_time() + 0.8\nwhile time.process_time() < end: pass"
        subprocess.run([sys.executable, "-c", busy], check=True)
        figures = running.result()
    assert figures["requests"] > 0 and figures["cpu_s"] < 0.5


def test_loads_in_the_background_end_at_once_when_their_block_is_interrupted(stalling_server):
    """Ctrl-C in a fault episode: the block's loads are killed with it, not waited for over their full duration,
    and no generator process is left."""
    import psutil

    from helpers.protocols import loads

    spec = LoadSpec("127.0.0.1", stalling_server.server_address[1], path="/", mode="open", rate=20,
                    arrival="constant", duration_s=60.0, warmup_s=0.0, processes=2)

    def generators() -> list:
        return [p for p in psutil.Process().children(recursive=True)
                if "helpers.instruments.loadgen" in " ".join(p.cmdline())]

    began = time.monotonic()
    with pytest.raises(KeyboardInterrupt), loads.in_background({"a": spec, "b": spec}) as futures:
        while len(generators()) < 4 and time.monotonic() - began < 20:
            time.sleep(0.05)
        time.sleep(1.0)  # the loads are under way
        raise KeyboardInterrupt
    assert time.monotonic() - began < 30  # not the loads' 60 s
    assert all(isinstance(future.exception(), RuntimeError) for future in futures.values())
    assert generators() == []
