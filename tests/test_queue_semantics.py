"""helpers.instruments.queue_semantics on the real stack: a drain's no-op filler is seen by each backend family's
depth reader, and what a transaction does to a task, measured on Huey-SQLite and on a PostgreSQL-backed backend.

One lab per backend, shared by the tests of this module (a lab takes seconds to start); its workers poll every
0.1 s, so a polling worker can look within a transaction held open for less than a second."""

import pytest

from helpers.instruments import queue_semantics
from helpers.stack import Lab

pytestmark = pytest.mark.stack

FAMILIES = ["huey_sqlite", "djtasks_db_postgres", "rq_redis", "celery_redis"]  # huey, django-tasks db, rq, celery


@pytest.fixture(scope="module")
def lab(request):
    lab = Lab(queue_backend=request.param, web_workers=2, consumer_workers=1, smtp_delay_s=0,
              consumer_max_delay_s=0.1, poll_interval_s=0.1).start()
    yield lab
    lab.stop()


@pytest.mark.parametrize("lab", FAMILIES, indirect=True)
def test_noops_enqueued_while_the_workers_are_stopped_wait_in_the_queue_then_drain(lab):
    lab.stop_consumer()
    report = queue_semantics.enqueue_noop(lab, 5)
    assert report["count"] == 5 and report["seconds"] > 0
    assert lab.queue.depth() == 5
    lab.start_consumer()
    lab.wait_until_drained(timeout=30)
    assert lab.queue.depth() == 0


# Huey enqueues into its own SQLite file, outside Django's transaction: a rollback keeps the task, and the worker can
# run it while the row is still uncommitted. django-tasks-db on PostgreSQL writes the task row in the request's
# transaction: a rollback drops it and no worker can see it before the commit. on_commit is right on both.
EXPECTED = {
    "huey_sqlite": {"ran_after_rollback": 1, "ran_before_commit": 1, "ran_after_commit": 0},
    "djtasks_db_postgres": {"ran_after_rollback": 0, "ran_before_commit": 0, "ran_after_commit": 1},
}


@pytest.mark.parametrize("lab", list(EXPECTED), indirect=True)
def test_what_a_transaction_does_to_a_task_enqueued_inside_it(lab):
    outcomes = queue_semantics.transaction_outcomes(lab, trials=1, hold_ms=800, settle_s=0.5)
    expected = EXPECTED[lab.queue.name]
    assert {key: outcomes[key] for key in expected} == expected, outcomes
    assert (outcomes["on_commit_ran_before_commit"], outcomes["on_commit_ran_after_commit"]) == (0, 1)
    assert outcomes["never_ran"] == 0


@pytest.mark.parametrize("lab", ["huey_sqlite"], indirect=True)
def test_enqueue_cost_measures_both_states_and_leaves_the_workers_running(lab):
    figures = queue_semantics.enqueue_cost(lab, requests=15, warmup=3, spaced_gap_s=0.001)
    for state in ("stopped", "running"):
        for kind in ("enqueue", "validate", "deferred"):
            assert figures[f"{state}_in_process_{kind}_p50_us"] > 0
            assert figures[f"{state}_in_process_spaced_{kind}_p50_us"] > 0
        for kind in ("validate", "deferred"):
            assert figures[f"{state}_{kind}_p50_us"] > figures[f"{state}_{kind}_server_p50_us"] > 0
        assert figures[f"{state}_difference_us"] == pytest.approx(
            figures[f"{state}_deferred_p50_us"] - figures[f"{state}_validate_p50_us"])
    assert figures["stopped_worker_cpu_us_per_request"] == 0  # no worker ran
    assert figures["running_worker_cpu_us_per_request"] > 0  # the workers sent the emails the requests enqueued
    assert lab.consumer_names() and lab.running
    lab.wait_until_drained(timeout=30)

