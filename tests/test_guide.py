"""The README's article table and "Which setup when" (helpers.runs.guide) are functions of the figures: change the
figures so that another backend or pattern wins, and the line names it."""

import copy

import pytest

from helpers.runs import guide, report


@pytest.fixture(scope="module")
def reference():
    return report.reference()


def _lines(measured) -> list[str]:
    return guide.which_setup_when(report.Figures(measured), lambda nb: nb.split("-")[0])


def _line(measured, start: str) -> str:
    return next(line for line in _lines(measured) if line.startswith(f"**{start}"))


def _set(measured, notebook: str, **figures):
    """The reference with `figures` changed in the notebook's run and in every committed benchmark run of it."""
    changed = copy.deepcopy(measured)
    changed.summary["notebooks"][notebook]["figures"].update(figures)
    for other in changed.other_runs.get(notebook, []):
        other.update(figures)
    return changed


def test_redis_picks_the_backend_whose_killed_workers_lost_least(reference):
    assert "→ **Celery, Redis, acks late (at-least-once after the pop): 0 lost" in _line(reference, "Have Redis")
    flipped = _set(reference, guide.QUEUES, celery_redis_acks_late_lost_on_kill=3, huey_redis_lost_on_kill=0)
    assert "→ **Huey, Redis (at-most-once): 0 lost" in _line(flipped, "Have Redis")
    none = _set(flipped, guide.QUEUES, huey_redis_lost_on_kill=2)
    assert "→ no Redis backend kept every email; fewest lost: Huey, Redis" in _line(none, "Have Redis")


def test_no_broker_takes_a_database_queue_that_kept_everything_else_the_ledger(reference):
    assert "→ **the ledger**" in _line(reference, "No broker")
    flipped = _set(reference, guide.QUEUES, djtasks_db_sqlite_lost_on_kill=0)
    assert "→ **Django Tasks DB, SQLite**, which lost nothing" in _line(flipped, "No broker")


def test_the_transaction_line_names_the_backends_where_a_rollback_stopped_the_task(reference):
    line = _line(reference, "Need the task inside")
    assert "**Django Tasks DB, PostgreSQL and Django Tasks DB, SQLite**" in line
    one = _set(reference, guide.QUEUES, djtasks_db_postgres_runs_after_rollback=3)
    assert "**Django Tasks DB, SQLite**: a rolled-back" in _line(one, "Need the task inside")
    none = _set(one, guide.QUEUES, djtasks_db_sqlite_runs_after_rollback=3)
    assert "no backend kept it there" in _line(none, "Need the task inside")
    early = _set(reference, guide.QUEUES, huey_sqlite_on_commit_ran_before_commit=1)
    assert "`transaction.on_commit` let 1 task run before its commit" in _line(early, "Need the task inside")


def test_pickup_names_the_quickest_backend(reference):
    celery = _set(reference, guide.QUEUES, celery_redis_acks_late_pickup_request_to_smtp_p50_ms=1.0)
    assert "→ **Celery, Redis, acks late**: picked up 1 ms" in _line(celery, "The email must leave soon")
    flipped = _set(celery, guide.QUEUES, rq_redis_pickup_request_to_smtp_p50_ms=0.5)
    assert "→ **RQ, Redis (django-tasks-rq)**: picked up 0.5 ms" in _line(flipped, "The email must leave soon")
    assert "as quick" not in _line(flipped, "The email must leave soon")
    tied = _set(flipped, guide.QUEUES, huey_redis_pickup_request_to_smtp_p50_ms=0.7)
    assert "picked up 0.5 ms after the request (p50, default settings); as quick within the 1.5× a pickup moves " \
           "between runs: *Huey, Redis* 0.7 ms;" in _line(tied, "The email must leave soon")


def test_the_ledger_line_holds_only_while_the_ledger_lost_nothing(reference):
    assert _line(reference, "Must lose no email, whatever").startswith("**Must lose no email, whatever the queue** →")
    lost = _set(reference, guide.DESIGNS, celery_redis_ledger_lost=2)
    assert "nothing measured here did: the ledger lost 2" in _line(lost, "Must lose no email")


def test_async_frees_the_thread_only_when_it_saturates_well_above_sync(reference):
    assert "→ **an async view**" in _line(reference, "Only need to free")
    flipped = _set(reference, guide.ASYNC, async_over_sync_saturation=1.5)
    assert "→ an async view gained little here" in _line(flipped, "Only need to free")


def test_the_article_table_reads_its_verdicts_from_the_figures(reference):
    table = guide.article_table(report.Figures(reference), lambda nb: nb)
    by_pattern = {row[0]: row for row in table}
    sync, asynchronous, deferred = (by_pattern[name] for name in guide.ARTICLE_PATTERNS.values())
    assert sync[1].startswith("yes: capped at") and sync[4].startswith("Slow and capped")
    assert asynchronous[1].startswith("no:") and asynchronous[4].startswith("Frees the server, not the user")
    assert deferred[2].startswith("does not wait") and deferred[4].startswith("Fast and uncapped")
    fast = _set(reference, guide.ASYNC, async_p50_ms=20.0)
    row = next(r for r in guide.article_table(report.Figures(fast), lambda nb: nb) if r[0] == asynchronous[0])
    assert row[2].startswith("does not wait: 20 ms") and row[4].startswith("Fast and uncapped")



def test_the_production_settings_lines_follow_notebook_09s_figures():
    """Notebook 09's choices (made-up figures of tests/test_which_setup.py) become the README's lines for the needs
    notebook 07 cannot answer, naming the pair the figures favour, and another once that pair loses an email."""
    from tests.test_which_setup import made_up

    figures = made_up()
    lines = guide._setups(figures, "09")
    assert [line.split("**")[1] for line in lines] == list(guide.SETUP_NEEDS)
    assert "→ **Fast, Redis, production**" in lines[0]
    figures["fast_redis_production_lost_on_kill"] = 1
    assert "→ **Push, PostgreSQL**" in guide._setups(figures, "09")[0]
