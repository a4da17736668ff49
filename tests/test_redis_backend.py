"""Huey on a real Redis server (Debian's redis-server, started by the lab), with several consumer processes.

No fakes: every test talks to the lab's own redis-server on loopback.
"""

import json
import os
import stat
import subprocess
import sys
import time
from urllib.parse import unquote, urlsplit

import psutil
import pytest
import redis

from helpers import REPO_ROOT
from helpers.instruments import queue_probe
from helpers.stack import Lab, redis_server
from helpers.stack.processes import port_is_bound
from helpers.stack.queues import huey_redis

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def lab():
    """Redis, two consumer processes of one worker each, a slow SMTP server so a task stays in flight."""
    with Lab(queue_backend="huey_redis", consumer_processes=2, consumer_workers=1, smtp_delay_s=0.3, web_workers=2,
             redis_read_timeout_s=0.2) as running:
        yield running


def post_emails(lab, count, prefix):
    ids = []
    for i in range(count):
        response = lab.http.post("/email/deferred/", {"to": f"{prefix}{i}@example.test"})
        assert response.status == 202
        ids.append(json.loads(response.body)["task_id"])
    return ids


def state(lab, task_id):
    return json.loads(lab.http.get(f"/tasks/{task_id}/").body).get("state")


def wait_for(predicate, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def recipients(lab):
    frame = lab.mail.deliveries()
    return {to for tos in frame["rcpt_tos"] for to in tos} if len(frame) else set()


def test_the_setting_switches_huey_to_redis_with_a_blocking_pop():
    code = ("import django; django.setup(); from huey.contrib.djhuey import HUEY; "
            "print(type(HUEY).__name__, HUEY.storage.blocking, HUEY.storage.read_timeout)")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "labsite.settings", "LAB_QUEUE_BACKEND": "huey_redis",
           "LAB_REDIS_URL": "redis://127.0.0.1:1/0", "LAB_REDIS_READ_TIMEOUT": "0.5"}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO_ROOT, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["LabRedisHuey", "True", "0.5"]
    env["LAB_QUEUE_BACKEND"] = "no_such_backend"
    failed = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO_ROOT, capture_output=True, text=True)
    assert failed.returncode != 0 and "LAB_QUEUE_BACKEND" in failed.stderr


def test_redis_listens_on_loopback_only_with_a_password_and_an_append_only_file(lab):
    server = psutil.Process(lab.processes["redis"].pid)
    listening = {(c.laddr.ip, c.laddr.port) for c in server.net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN}
    assert listening == {("127.0.0.1", lab.queue.redis.port)}
    with pytest.raises(redis.AuthenticationError), \
            redis.Redis(host="127.0.0.1", port=lab.queue.redis.port, socket_timeout=2) as anonymous:
        anonymous.ping()
    with redis_server.client(lab.queue.redis.url) as conn:
        assert conn.config_get("appendonly") == {"appendonly": "yes"}
        assert conn.config_get("save") == {"save": ""}
        assert conn.config_get("dir") == {"dir": str(lab.run_dir)}
    assert (lab.run_dir / "appendonlydir").is_dir()
    assert oct((lab.run_dir / "redis.conf").stat().st_mode & 0o777) == "0o600"
    password = unquote(urlsplit(lab.queue.redis.url).password)
    assert len(password) >= 20 and password not in " ".join(server.cmdline())
    assert password not in lab.queue.location  # what a notebook prints


def test_both_consumer_processes_take_tasks_and_every_email_arrives(lab):
    before = lab.mail.emails_received()
    ids = post_emails(lab, 8, "both")
    lab.mail.wait_for_emails(before + 8, timeout=30)
    assert all(state(lab, task_id) == "delivered" for task_id in ids)
    executed = {name: lab.processes[name].log_text().count("Executing labsite.tasks.send_welcome_email")
                for name in ("consumer", "consumer-2")}
    assert all(count > 0 for count in executed.values()), executed


def test_queued_tasks_survive_a_killed_consumer_and_run_after_its_restart(lab):
    lab.start_consumer(consumer_processes=1)  # one worker: one task in flight, the rest wait in Redis
    ids = post_emails(lab, 6, "killed")
    wait_for(lambda: state(lab, ids[0]) == "running", what="the first task to run")
    lab.processes["consumer"].kill()  # SIGKILL, as a crash: no graceful shutdown
    queued = [task_id for task_id in ids if state(lab, task_id) == "queued"]
    assert len(queued) >= 4  # the one in flight is lost with its worker (Huey pops: at-most-once)
    assert lab.queue_depth() == len(queued)
    time.sleep(0.5)
    assert lab.queue_depth() == len(queued)  # nothing consumes them, nothing drops them
    lab.start_consumer(consumer_processes=2)
    wait_for(lambda: all(state(lab, task_id) == "delivered" for task_id in queued), timeout=30,
             what="the queued tasks to be delivered")
    assert {f"killed{ids.index(t)}@example.test" for t in queued} <= recipients(lab)
    assert lab.queue_depth() == 0


def test_queued_tasks_survive_a_killed_redis_server_through_its_append_only_file(lab):
    lab.stop_consumer()
    ids = post_emails(lab, 5, "aof")
    time.sleep(1.2)  # appendfsync everysec: the lab's "normal" durability is on disk within a second
    lab.processes["redis"].kill()  # SIGKILL: no shutdown, no final fsync
    lab.queue.start_servers()  # same port, same folder: replays the AOF
    assert lab.queue_depth() == 5
    with lab.queue.redis.client() as conn:  # Huey's own list, read without the backend class
        assert conn.llen(huey_redis.QUEUE_KEY) == 5
    with queue_probe.QueueDepthSampler(lab.queue, 0.01) as sampler:  # the notebooks' sampler, on its own connection
        time.sleep(0.1)
    assert set(sampler.frame()["depth"]) == {5}
    lab.start_consumer()
    wait_for(lambda: all(state(lab, task_id) == "delivered" for task_id in ids), timeout=30,
             what="the tasks queued before the crash to be delivered")


@pytest.mark.parametrize("backend", ["huey_sqlite", "huey_redis"])
def test_stopping_leaves_no_process_and_no_bound_port_with_several_consumers(backend):
    lab = Lab(queue_backend=backend, consumer_processes=2, consumer_workers=1, web_workers=1, smtp_delay_s=0,
              redis_read_timeout_s=0.2).start()
    assert lab.consumer_names() == ["consumer", "consumer-2"]
    assert all(server in lab.processes for server in lab.queue.servers)  # redis-server, for Redis only
    pids = lab.pids()
    ports = list(lab.listening_sockets())  # web, SMTP (and its status port), the queue's servers
    assert {lab.web_port, lab.smtp_port} <= set(ports) and len(ports) >= 2 + len(lab.queue.servers)
    lab.stop()
    assert [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"] == []
    assert not any(port_is_bound(port) for port in ports)
    assert not lab.processes


def test_redis_config_binds_loopback_keeps_an_aof_and_hides_its_password(tmp_path):
    path = redis_server.write_config(tmp_path, 6390, "full", "s3cret")
    lines = path.read_text().splitlines()
    for expected in ("port 6390", "bind 127.0.0.1", "protected-mode yes", "appendonly yes", "appendfsync always",
                     'save ""', f"dir {tmp_path}", "requirepass s3cret"):
        assert expected in lines
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(ValueError):
        redis_server.write_config(tmp_path, 6390, "sometimes")
    assert redis_server.url(6390, "a/b") == "redis://:a%2Fb@127.0.0.1:6390/0"
    assert redis_server.url(6390) == "redis://127.0.0.1:6390/0"
