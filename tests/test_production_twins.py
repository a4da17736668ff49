"""The production twins of the queue backends (helpers.stack.queues.pairs(), notebook 09's matrix): each names a
registered default with the same servers, cites the docs that recommend its settings, and comes after its default.
(Each twin on the real stack: tests/test_site_every_backend.py.)"""

import time

import pytest

from helpers.runs.params import quick_mode
from helpers.stack import Lab
from helpers.stack.queues import BACKENDS, all_names, names, pairs
from helpers.stack.smtp_sink import set_fault

TWINS = [name for name in pairs() if BACKENDS[name].setting == "production"]


def test_every_production_twin_comes_after_its_default_and_names_one_with_the_same_servers():
    order = pairs()
    assert TWINS and len(order) == len(set(order))
    for twin in TWINS:
        cls = BACKENDS[twin]
        default = BACKENDS.get(cls.production_of)
        assert default is not None and default.setting == "default" and default.has_worker, twin
        assert order.index(cls.production_of) < order.index(twin)
        assert default.servers == cls.servers, twin
        assert cls.recommended_by and all(url.startswith("https://") for _, url in cls.recommended_by), twin


def test_pairs_hold_every_backend_with_workers_defaults_first_and_leave_notebook_07s_nine_alone():
    with_workers = [name for name in all_names() if BACKENDS[name].has_worker]
    assert sorted(pairs()) == sorted(with_workers)
    settings = [BACKENDS[name].setting for name in pairs()]
    assert settings == sorted(settings)  # "default" < "production": every default before every twin
    assert "djtasks_immediate" in all_names() and "djtasks_immediate" not in pairs()
    assert len(names()) == 9


@pytest.mark.stack
@pytest.mark.skipif(quick_mode(), reason="a PostgreSQL lab of its own: about 15 s, over the quick budget")
@pytest.mark.parametrize("backend", ["procrastinate_postgres_production"])
def test_a_killed_workers_task_runs_again_within_the_twins_bound(backend):
    """A worker SIGKILLed mid-send, a new one started: the twin's stalled-job task hands the email to it within its
    redelivery bound (measured: 8.2 s after the kill, 3.1 s of it the new worker's start). On procrastinate_postgres,
    the default, the same steps left the job "doing", the email unsent, 20 s after the kill."""
    to = f"killed-{backend}@example.test"
    with Lab(queue_backend=backend, web_workers=1, consumer_workers=1, smtp_delay_s=60.0) as lab:
        assert lab.http.post("/email/deferred/", {"to": to}).status == 202
        wait_for(lambda: lab.queue.counts()["running"] == 1, 10.0, "the task running")
        assert lab.queue.kill_workers() >= 1
        set_fault(lab.smtp_control, "ok", delay_s=0.0)
        lab.start_consumer()
        killed_at = time.monotonic()
        wait_for(lambda: to in str(lab.mail.deliveries()["rcpt_tos"].tolist()), lab.queue.redelivery_after_s + 5.0,
                 "the email sent again")
        assert time.monotonic() - killed_at <= lab.queue.redelivery_after_s + 5.0


def wait_for(done, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not after {timeout_s} s")
        time.sleep(0.05)
