"""The lab's processes end with it: a second lab in the same run folder stops the first, a killed kernel takes its
lab down, an orphaned grandchild is found through its session, and nothing is loaded in a forked child."""

import ctypes
import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from helpers import REPO_ROOT
from helpers.stack import Lab
from helpers.stack.processes import ManagedProcess, poll_until

pytestmark = pytest.mark.stack


def wait_gone(pids, timeout: float = 15.0) -> list[int]:
    """The pids still alive (zombies count as gone) after up to `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [pid for pid in pids if psutil.pid_exists(pid)
                 and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def test_a_second_lab_in_the_same_run_folder_stops_the_first(tmp_path):
    first = Lab(run_dir=tmp_path, web_workers=1, consumer_workers=1, smtp_delay_s=0).start()
    first_pids = first.pids()
    second = Lab(run_dir=tmp_path, web_workers=1, consumer_workers=1, smtp_delay_s=0).start()
    try:
        assert not first.running
        assert wait_gone(first_pids, timeout=5) == []
        assert second.http.get("/noop/").status == 200
    finally:
        second.stop()
        first.stop()


def test_a_killed_kernel_takes_its_lab_down(tmp_path):
    """SIGKILL the process that started the lab (as a notebook kernel dies): no lab process survives it."""
    script = ("import json, sys, time\nfrom helpers.stack import Lab\n"
              f"lab = Lab(run_dir={str(tmp_path)!r}, web_workers=1, consumer_workers=1, smtp_delay_s=0).start()\n"
              "print(json.dumps(lab.pids()), flush=True)\ntime.sleep(300)\n")
    kernel = subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    pids = []
    try:
        pids = json.loads(kernel.stdout.readline())
        assert len(pids) >= 4  # smtp, consumer, gunicorn master and worker
        kernel.send_signal(signal.SIGKILL)
        kernel.wait(10)
        assert wait_gone(pids) == []
    finally:
        kernel.kill()
        for pid in wait_gone(pids, timeout=0):
            psutil.Process(pid).kill()


def test_stop_finds_a_grandchild_whose_parent_died(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    process = ManagedProcess("orphaner", ["sh", "-c", f"sleep 300 & echo $! > {pid_file}; exit 0"],
                             tmp_path / "orphaner.log").start()
    process.popen.wait(10)
    grandchild = int(pid_file.read_text())
    assert psutil.pid_exists(grandchild) and process.descendants() == []  # no longer below its parent
    process.stop()
    assert wait_gone([grandchild], timeout=5) == []


def test_nothing_is_loaded_in_the_forked_child(tmp_path, monkeypatch):
    """Loading a library between fork and exec can deadlock when other threads run: the child must not."""

    def refuse(*args, **kwargs):
        raise AssertionError("a library was loaded in the forked child")

    monkeypatch.setattr(ctypes, "CDLL", refuse)
    process = ManagedProcess("child", [sys.executable, "-c", "import os; print(os.getppid())"],
                             tmp_path / "child.log").start()
    assert process.popen.wait(10) == 0
    assert process.log_text().strip() == str(os.getpid())


def test_pinning_a_server_pins_the_workers_it_already_forked(tmp_path):
    pid_file = tmp_path / "worker.pid"
    core = max(os.sched_getaffinity(0))
    process = ManagedProcess("forker", ["sh", "-c", f"sleep 300 & echo $! > {pid_file}; wait"],
                             tmp_path / "forker.log").start()
    try:
        deadline = time.monotonic() + 10
        while not pid_file.exists() or not pid_file.read_text().strip():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        process.pin([core])
        worker = psutil.Process(int(pid_file.read_text()))
        assert psutil.Process(process.pid).cpu_affinity() == [core] and worker.cpu_affinity() == [core]
    finally:
        process.stop()


def test_the_orphan_check_counts_this_sessions_processes_only(tmp_path):
    """Another checkout's lab, running beside the tests, is not an orphan of this session."""
    from tests.conftest import lab_servers_running

    since = time.time() - 1
    argv = [sys.executable, "-c", "import time; time.sleep(60)", "helpers.stack.smtp_sink"]
    theirs = subprocess.Popen(argv, env={**os.environ, "LAB_RUNS_DIR": str(tmp_path / "elsewhere")})
    ours = subprocess.Popen(argv)
    try:
        time.sleep(0.3)
        found = lab_servers_running(since)
        assert any(line.startswith(f"{ours.pid}:") for line in found)
        assert not any(line.startswith(f"{theirs.pid}:") for line in found)
    finally:
        for process in (theirs, ours):
            process.kill()
            process.wait()


def test_a_server_whose_port_was_taken_before_it_bound_starts_on_another(tmp_path, monkeypatch):
    """free_port() says a port was free a moment ago; here another process listens on it by the time the SMTP
    server binds. The lab must not take that other process for its server, and must start its own elsewhere."""
    import socket

    import helpers.stack.processes as processes_module

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    picks = [taken.getsockname()[1]]
    real_free_port = processes_module.free_port
    monkeypatch.setattr(processes_module, "free_port", lambda: picks.pop() if picks else real_free_port())
    lab = Lab(run_dir=tmp_path / "lab")
    try:
        lab._start_smtp()
        assert lab.smtp_port != taken.getsockname()[1] and lab.processes["smtp"].listens_on(lab.smtp_port)
    finally:
        lab.stop()
        taken.close()


def test_the_smtp_server_refuses_a_taken_port_before_aiosmtpd_waits_for_it(tmp_path, monkeypatch):
    """aiosmtpd's Controller.start() reports a failed bind only once its whole ready_timeout has passed (10 s a
    retry of start_on_port); the sink must fail with the bind's own error before it starts the controller."""
    import errno
    import socket

    from helpers.stack import smtp_sink

    def start(controller):
        raise AssertionError("the controller was started on a port that was taken: it waits its ready_timeout")

    monkeypatch.setattr(smtp_sink.Controller, "start", start)
    with socket.create_server(("127.0.0.1", 0)) as taken, pytest.raises(OSError) as failure:
        smtp_sink.main(["--port", str(taken.getsockname()[1]), "--record", str(tmp_path / "record.jsonl")])
    assert failure.value.errno == errno.EADDRINUSE


def test_a_wait_on_progress_outlasts_its_timeout_while_the_work_moves_and_not_after():
    """A queue that drains slowly is waited for past `timeout`; one that stops is given up on `timeout` after."""
    started = time.monotonic()

    def depth() -> int:  # one task taken every 0.1 s, from 10
        return max(0, 10 - int((time.monotonic() - started) / 0.1))

    waited = poll_until(lambda: depth() == 0, 0.3, lambda: "stuck", lambda: True, "draining", progress=depth)
    assert waited > 0.9  # three times the timeout: it kept going because the depth kept falling

    def stuck_depth() -> int:  # three tasks taken, then none
        return max(7, depth())

    started = time.monotonic()
    with pytest.raises(TimeoutError, match="stuck"):
        poll_until(lambda: stuck_depth() == 0, 0.3, lambda: "stuck", lambda: True, "draining", progress=stuck_depth)
    assert time.monotonic() - started < 1.5
