"""Notebook 06's arithmetic on hand-made inputs (helpers.experiments.scale_out)."""

import pandas as pd
import pytest

from helpers.experiments import scale_out as backends
from helpers.stack import Lab


def test_only_enqueues_made_while_every_producer_was_sending_count():
    enqueues = pd.DataFrame({"producer": [0, 0, 0, 1, 1, 1],
                             "enqueued_at": [10.0, 11.0, 12.0, 10.5, 11.5, 13.0]})
    assert list(backends.all_active(enqueues)) == [False, True, True, True, True, False]


def test_cpu_of_every_consumer_process_counts_as_the_consumers():
    parts = backends.cpu_by_part({"cpu_web_pct": 10.0, "cpu_consumer_pct": 5.0, "cpu_consumer-2_pct": 7.0,
                                  "cpu_redis_pct": 1.5})
    assert parts == {"web": 10.0, "consumers": 12.0, "redis": 1.5}


def test_the_projection_adds_one_round_trip_and_caps_a_worker_by_its_commands():
    drains = pd.DataFrame({"backend": ["huey_sqlite", "huey_redis", "huey_redis"], "processes": [1, 1, 4],
                           "enqueue_p50_us": [50.0, 100.0, 120.0], "server_commands_per_task": [None, 5.0, 5.0]})
    pickup = pd.DataFrame({"backend": ["huey_sqlite", "huey_redis"], "p50_ms": [40.0, 2.0]},
                          index=["Huey, SQLite, default polling", "Huey, Redis, blocking pop"])
    cpu = pd.DataFrame({"backend": ["huey_redis"], "cpu_servers_pct": [10.0], "throughput": [1000.0]})
    table = backends.multi_host_projection(drains, pickup, cpu, "huey_redis", rtts_ms=(0.5,))
    row = table.loc[0.5]
    assert row["enqueue_p50_ms"] == pytest.approx(0.6)  # the fewest processes' enqueue, plus one round trip
    assert row["pickup_p50_ms"] == pytest.approx(2.5)
    assert row["tasks_per_s_per_worker_max"] == pytest.approx(1000 / (4 * 0.5))  # the LPUSH is the producer's
    assert row["server_core_tasks_per_s_max"] == pytest.approx(10_000)


def test_roles_come_from_the_backends_attributes_not_their_names(tmp_path):
    labs = {name: Lab(run_dir=tmp_path / name, queue_backend=name) for name in ("huey_redis", "huey_sqlite")}
    assert backends.roles(labs) == {"server": "huey_redis", "blocking": "huey_redis", "embedded": "huey_sqlite",
                                    "polled": "huey_sqlite"}


def scale_out_inputs():
    """What the five experiments and view_enqueue return, by hand, for two backends A (a file) and B (a server)."""
    view = pd.DataFrame({"backend": ["a", "a", "b", "b"], "endpoint": ["noop", "deferred"] * 2,
                         "n": [10] * 4, "p50_ms": [0.5, 0.8, 0.6, 1.2], "p99_ms": [1.0] * 4, "max_ms": [2.0] * 4}
                        ).set_index(["backend", "endpoint"])
    pickup = pd.DataFrame({"backend": ["a", "a", "b"], "n": [3, 3, 3], "p50_ms": [40.0, 6.0, 2.0],
                           "max_ms": [80.0, 9.0, 3.0]}, index=["a default", "a tuned", "b pop"])
    drains = pd.DataFrame({"backend": ["a", "b"] * 4, "processes": [1, 1, 1, 1, 4, 4, 4, 4],
                           "turn": [0, 0, 1, 1] * 2, "tasks_per_s": [4000, 2000, 5000, 2200, 3000, 3900, 3100, 4100],
                           "enqueue_p50_us": [45.0, 110.0] * 4, "enqueue_p99_us": [200.0, 300.0] * 4,
                           "server_commands_per_task": [None, 5.0] * 4,
                           "queued_when_all_up": [2000, 2000, 1990, 2000, 0, 1500, 900, 1700]})
    contention = pd.DataFrame({"backend": ["a", "b", "a", "b"], "producers": [1, 1, 4, 4], "consumers": [1, 1, 4, 4],
                               "errors": [0, 0, 2, 0], "p99_us": [500.0, 400.0, 9000.0, 2000.0],
                               "max_us": [900.0, 800.0, 40_000.0, 7000.0]})
    cpu = pd.DataFrame({"backend": ["a", "b"], "errors": [0, 1], "cpu_left_for_web_pct": [150.0, 140.0],
                        "cpu_servers_pct": [0.0, 4.0], "cpu_consumers_pct": [30.0, 35.0]})
    deliveries = pd.DataFrame({"requested": [70, 70], "accepted": [70, 70], "emails_arrived": [70, 69], "lost": [0, 1],
                               "duplicated": [0, 0]},
                              index=pd.Index(["a", "b"], name="backend"))
    return view, pickup, drains, contention, cpu, deliveries


def test_key_figures_are_named_backend_what_unit_and_carry_what_the_verdict_compares():
    figures = backends.key_figures(*scale_out_inputs())
    assert figures["a_drain_tasks_per_s"] == 4500 and figures["b_drain_4_consumers_tasks_per_s"] == 4000  # medians
    assert (figures["a_enqueue_p50_us"], figures["b_enqueue_p50_us"]) == (45.0, 110.0)
    assert (figures["a_pickup_enqueue_to_start_p50_ms"], figures["a_tuned_pickup_enqueue_to_start_p50_ms"],
            figures["b_pickup_enqueue_to_start_p50_ms"]) == (40, 6, 2)
    assert "b_tuned_pickup_enqueue_to_start_p50_ms" not in figures  # a blocking pop has no polling to tune
    assert (figures["a_enqueue_errors"], figures["a_contended_enqueue_max_us"]) == (2, 40_000.0)  # the busiest level
    assert (figures["a_load_errors"], figures["b_load_errors"]) == (0, 1)
    assert (figures["b_server_commands_per_task"], figures["a_server_commands_per_task"]) == (5.0, None)
    assert (figures["b_view_accepted"], figures["b_view_emails_arrived"], figures["b_view_lost"]) == (70, 69, 1)
    assert figures["a_view_deferred_p50_ms"] == 0.8 and figures["contention_producers"] == 4
    assert figures["b_drain_4_consumers_speedup"] == pytest.approx(4000 / 2100, abs=0.01)
    assert (figures["a_drain_4_consumers_queued_when_up"], figures["b_drain_4_consumers_queued_when_up"]) == (0, 1500)
