"""The scale-out instruments' arithmetic on hand-made inputs (helpers.backends, helpers.redis_server)."""

import stat

import pandas as pd
import pytest

from helpers import backends, redis_server


def test_only_enqueues_made_while_every_producer_was_sending_count():
    enqueues = pd.DataFrame({"producer": [0, 0, 0, 1, 1, 1],
                             "enqueued_at": [10.0, 11.0, 12.0, 10.5, 11.5, 13.0]})
    assert list(backends.all_active(enqueues)) == [False, True, True, True, True, False]


def test_cpu_of_every_consumer_process_counts_as_the_consumers():
    parts = backends.cpu_by_part({"cpu_web_pct": 10.0, "cpu_consumer_pct": 5.0, "cpu_consumer-2_pct": 7.0,
                                  "cpu_redis_pct": 1.5})
    assert parts == {"web": 10.0, "consumers": 12.0, "redis": 1.5}


def test_the_projection_adds_one_round_trip_and_caps_a_worker_by_its_commands():
    drains = pd.DataFrame({"backend": ["sqlite", "redis", "redis"], "processes": [1, 1, 4],
                           "enqueue_p50_us": [50.0, 100.0, 120.0], "redis_commands_per_task": [None, 5.0, 5.0]})
    pickup = pd.DataFrame({"p50_ms": [2.0]}, index=["Redis, blocking pop"])
    cpu = pd.DataFrame({"backend": ["redis"], "cpu_redis_pct": [10.0], "throughput": [1000.0]})
    table = backends.multi_host_projection(drains, pickup, cpu, rtts_ms=(0.5,))
    row = table.loc[0.5]
    assert row["enqueue_p50_ms"] == pytest.approx(0.6)
    assert row["pickup_p50_ms"] == pytest.approx(2.5)
    assert row["tasks_per_s_per_worker_max"] == pytest.approx(1000 / (4 * 0.5))  # the LPUSH is the producer's
    assert row["redis_core_tasks_per_s_max"] == pytest.approx(10_000)


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
