"""helpers.instruments.queue_semantics on the real stack: a drain's no-op filler is seen by each backend family's
depth reader, what a transaction does to a task, measured on Huey-SQLite and on a PostgreSQL-backed backend, and the
enqueue's cost (helpers.protocols.enqueue_cost) on Huey-SQLite.

One lab per backend, shared by the tests of this module (a lab takes seconds to start); its workers poll every
0.1 s, so a polling worker can look within a transaction held open for less than a second."""

import pytest

from helpers.instruments import queue_semantics
from helpers.instruments.client import server_timing_spans, time_requests
from helpers.instruments.endpoints import request_spec
from helpers.protocols import enqueue_cost
from helpers.stack import Lab
from helpers.stack.processes import LOOPBACK

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
def test_the_enqueue_cost_is_measured_in_process_and_in_the_request_with_the_workers_running_and_stopped(lab):
    figures = enqueue_cost.measure(lab, inprocess_calls=200, requests=100, warmup=10)
    assert (figures["calls"], figures["requests"]) == (200, 100)
    for name in enqueue_cost.FIGURES:
        assert 0 < figures[f"{name}_ci_low_us"] <= figures[f"{name}_us"] <= figures[f"{name}_ci_high_us"], figures
    assert figures["in_request_us"] < 5000 and figures["inprocess_us"] < 5000  # an enqueue, not a request
    assert lab.consumer_names() and lab.queue.depth() == 0  # the workers back, every email sent


@pytest.mark.parametrize("lab", ["huey_sqlite"], indirect=True)
def test_served_answers_carry_the_enqueue_span_only_where_the_view_enqueued(lab):
    specs = [request_spec(view, 5, warmup=0, form={"to": f"span-{view}{{i}}@example.test"})
             for view in ("deferred", "validate")]
    timings = time_requests(LOOPBACK, lab.web_port, specs)
    spans = dict(zip(timings["label"], timings["server_timing"].map(server_timing_spans), strict=False))
    assert set(spans["deferred"]) == {"app", "enqueue"} and 0 < spans["deferred"]["enqueue"] < spans["deferred"]["app"]
    assert set(spans["validate"]) == {"app"}  # the whole request's span, as notebook 07 reads it, on every answer
    assert (timings["server_ms"] == timings["server_timing"].map(lambda h: server_timing_spans(h)["app"])).all()
    lab.wait_until_drained(timeout=30)
