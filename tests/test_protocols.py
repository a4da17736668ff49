"""The shared measurement procedures (helpers.protocols): their arithmetic on hand-made inputs, settling and
loads-started on stub labs whose timing the test controls, then every procedure that measures something on one
real lab (Huey on Redis, workers, SMTP server): view cost, pickup, drain, the kill episode, the server sampler."""

import math
import os
import time
from concurrent.futures import Future
from types import SimpleNamespace

import pandas as pd
import pytest

from helpers.protocols import (
    drain,
    kill_episode,
    loads,
    messages,
    open_loop,
    pickup,
    samplers,
    settle,
    turns,
    view_cost,
)

# -- per-message accounting ------------------------------------------------------------------------------------


def requests(*statuses):
    """Load-generator records: request i answered statuses[i] (0: the client saw the connection fail)."""
    return pd.DataFrame({"i": range(len(statuses)), "status": statuses,
                         "error": [None if status else "reset" for status in statuses]})


def copies(**by_request):
    """Copies the SMTP server accepted per request number: copies(r0=1, r1=2)."""
    return pd.Series({int(name[1:]): n for name, n in by_request.items()}, dtype=int)


def test_duplicates_are_counted_for_every_message_not_only_the_accepted():
    counted = messages.account(requests(202, 0), copies(r0=1, r1=2), copies(r0=1, r1=2))
    assert counted["duplicated"] == 1
    assert counted["delivered_unacknowledged"] == 1 and counted["lost"] == 0


def test_copies_that_arrive_after_settling_are_reported_late_and_counted():
    counted = messages.account(requests(202, 202), copies(r0=2, r1=1), copies(r0=1))
    assert counted["late_copies"] == 2  # r0's second copy and r1's only one came after the settle
    assert counted["duplicated"] == 1 and counted["lost"] == 0


def test_one_loss_and_one_duplicate_do_not_cancel_out():
    counted = messages.account(requests(202, 202), copies(r1=2), copies(r1=2))
    assert (counted["lost"], counted["duplicated"], counted["delivered"]) == (1, 1, 1)


def test_per_message_reports_one_loss_and_one_duplicate_as_both():
    assert messages.per_message([0, 1], copies(r1=2)) == {"requested": 2, "delivered": 1, "lost": 1, "duplicated": 1}
    figures = {"lost": 1, "duplicated": 1, "received": 2, "requested": 2}  # the totals agree
    assert not messages.each_delivered_once(figures, "lost", "duplicated", "received", "requested")
    assert messages.each_delivered_once({**figures, "lost": 0, "duplicated": 0}, "lost", "duplicated", "received",
                                        "requested")


def test_first_accepted_at_matches_each_request_number_with_its_first_copy():
    deliveries = pd.DataFrame({"rcpt_tos": [["e2e1-x-0@example.test"], ["e2e1-x-1@example.test"],
                                            ["e2e1-x-0@example.test"], ["e2e1-y-2@example.test"], []],
                               "accepted_at": [5.0, 6.0, 4.0, 7.0, 8.0]})
    lab = SimpleNamespace(mail=SimpleNamespace(deliveries=lambda: deliveries))

    assert messages.first_accepted_at(lab, "e2e1-x-").to_dict() == {0: 4.0, 1: 6.0}


def test_every_tag_is_new_and_recipients_carry_it():
    first, second = messages.new_tag("kill"), messages.new_tag("kill")
    assert first != second and first.startswith("kill")
    assert messages.recipient(first, "deferred", 3) == f"{first}-deferred-3@example.test"


# -- settling: one rule, progress-based --------------------------------------------------------------------------


class StubLab:
    """What settle() reads of a lab: one open piece of work (a queued task, or a ledger job with `open_work`) stays
    until `open_for_s` has passed; with `progressing`, the SMTP server accepts one more message at every read
    meanwhile. `held_for_s`: a dead worker's task stays taken that long, on a queue that redelivers."""

    def __init__(self, open_for_s, running=True, progressing=False, held_for_s=None):
        self.until = time.monotonic() + open_for_s
        self.held_until = time.monotonic() + (held_for_s or 0)
        self.queue = SimpleNamespace(counts=self.counts, redelivery_after_s=60.0 if held_for_s else None)
        self.running, self.processes = running, {"consumer": "dead" if not running else "alive"}
        self.progressing, self.received = progressing, 7
        self.mail = SimpleNamespace(emails_received=self.emails_received)

    def emails_received(self):
        if self.progressing and time.monotonic() < self.until:
            self.received += 1
        return self.received

    def open(self):
        return int(time.monotonic() < self.until)

    def counts(self):
        return {"pending": self.open(), "scheduled": 0, "running": int(time.monotonic() < self.held_until)}


def settle_one(lab, **options):
    return settle.settle({"a": lab}, **options)["a"]


def test_a_settle_that_times_out_says_so():
    timed_out = settle_one(StubLab(open_for_s=60), timeout_s=0.6, quiet_s=0.2)
    assert timed_out["settled"] is False and timed_out["settle_s"] >= 0.6
    settled = settle_one(StubLab(open_for_s=0.3), timeout_s=10, quiet_s=0.2)
    assert settled["settled"] is True and settled["settle_s"] < 5


def test_a_backlog_that_drains_is_waited_for_and_a_stall_is_not():
    """A long episode's backlog takes longer than the timeout to drain while messages keep arriving: the timeout
    counts from the last progress, never from the start. Progress without end still stops at the overall limit."""
    draining = settle_one(StubLab(open_for_s=1.5, progressing=True), timeout_s=0.6, quiet_s=0.2)
    assert draining["settled"] is True and draining["settle_s"] >= 1.5
    endless = settle_one(StubLab(open_for_s=60, progressing=True), timeout_s=0.3, quiet_s=0.2, limit_s=1.0)
    assert endless["settled"] is False and 1.0 <= endless["settle_s"] < 5


def test_open_work_beyond_the_queue_is_waited_for():
    lab = StubLab(open_for_s=0.8)
    lab.queue.counts = lambda: {"pending": 0, "scheduled": 0, "running": None}  # the queue is empty at once
    settled = settle_one(lab, timeout_s=5, quiet_s=0.2, open_work=lambda stub: stub.open())
    assert settled["settled"] is True and settled["settle_s"] >= 0.8


def test_a_task_a_dead_worker_held_is_waited_for_until_the_queue_hands_it_back():
    settled = settle_one(StubLab(open_for_s=0, held_for_s=1.0), timeout_s=10, quiet_s=0.2)
    assert settled["settled"] is True and settled["settle_s"] >= 1.0


def test_settling_stops_when_a_lab_process_died():
    """A dead worker or reconciler would leave work behind for good: waiting out the timeout would hide it."""
    with pytest.raises(RuntimeError, match="died while the lab settled"):
        settle_one(StubLab(open_for_s=60, running=False), timeout_s=5, quiet_s=0.2)


# -- loads started -------------------------------------------------------------------------------------------------


def test_loads_started_waits_for_every_sign_and_gives_up_when_a_load_ends():
    began = time.monotonic()
    assert loads.started([lambda: time.monotonic() - began > 0.3, lambda: True], [Future()]) - began >= 0.3
    ended = Future()
    ended.set_result(None)
    began = time.monotonic()
    assert loads.started([lambda: False], [ended]) - began < 0.5
    assert loads.started([lambda: False], [Future()], timeout_s=0.2) - began >= 0.2


def test_a_recipient_counts_only_once_it_arrives_after_the_sign_was_made(tmp_path):
    lab = SimpleNamespace(smtp_record=tmp_path / "smtp.jsonl")
    lab.smtp_record.write_text('{"rcpt_tos": ["kill1-a-0@example.test"]}\n')
    arrived = loads.recipient_arrived(lab, "kill1-a-")
    assert not arrived()  # already there before: another episode's
    with open(lab.smtp_record, "a") as record:
        record.write('{"rcpt_tos": ["kill1-b-0@example.test"]}\n')
    assert not arrived()
    with open(lab.smtp_record, "a") as record:
        record.write('{"rcpt_tos": ["kill1-a-1@example.test"]}\n')
    assert arrived()


# -- turns, pickup, view cost: arithmetic --------------------------------------------------------------------------


def test_turns_alternate_so_that_none_always_goes_first():
    labs = {"a": 1, "b": 2, "c": 3}
    assert turns.turn_order(labs, 0) == ["a", "b", "c"] and turns.turn_order(labs, 1) == ["c", "b", "a"]
    assert [(t, name) for t, name, _ in turns.interleaved(labs, 2)] == [
        (0, "a"), (0, "b"), (0, "c"), (1, "c"), (1, "b"), (1, "a")]


def test_poll_interval_grows_by_the_backoff_up_to_the_cap():
    assert pickup.poll_interval_after_idle(0.05, 0.1, 10, 1.15) == pytest.approx(0.1)
    assert pickup.poll_interval_after_idle(0.15, 0.1, 10, 1.15) == pytest.approx(0.115)
    assert pickup.poll_interval_after_idle(1e4, 0.1, 10, 1.15) == 10
    assert pickup.poll_interval_after_idle(5, 0.005, 0.02, 1.15) == 0.02


def test_every_setting_meets_the_same_idle_periods_in_the_same_order():
    first, second = pickup.idle_order([0.5, 2.0], 3), pickup.idle_order([0.5, 2.0], 3)
    assert list(first) == list(second) and sorted(first) == [0.5] * 3 + [2.0] * 3


def test_pickup_summary_per_group_counts_only_pickups_that_happened():
    frame = pd.DataFrame({"backend": ["a"] * 4 + ["b"] * 2, "settings": ["default", "default", "tuned", "tuned",
                                                                          "default", "default"],
                          "pickup_ms": [100.0, 300.0, 10.0, 30.0, 2.0, float("nan")], "idle_cpu_pct": [0.5] * 6})
    summary = pickup.summary(frame, ["backend", "settings"])
    assert summary.loc[("a", "default"), "p50_ms"] == 200.0
    assert summary.loc[("a", "tuned"), "max_ms"] == 30.0
    assert summary.loc[("b", "default"), "n"] == 1  # an email that never arrived is not a pickup
    by_setting = pickup.summary(frame, ["settings"])
    assert by_setting.loc["default", "backend"] == "a" and by_setting.loc["tuned", "idle_cpu_pct"] == 0.5


def view(validate_ms=1.0, deferred_ms=1.3, backends=("polled", "blocking")) -> view_cost.ViewCost:
    """A ViewCost as measure() returns it: 3 timed requests per view and backend, one warm-up, one wrk turn."""
    rows = []
    for backend in backends:
        for label, ms, status in (("validate", validate_ms, 200), ("deferred", deferred_ms, 202)):
            rows.append({"backend": backend, "label": label, "warmup": True, "total_ms": 50.0, "status": status})
            rows += [{"backend": backend, "label": label, "warmup": False, "total_ms": ms + d, "status": status}
                     for d in (-0.1, 0.0, 0.1)]
        rows.append({"backend": backend, "label": "validate", "warmup": False, "total_ms": 99.0, "status": 404})
    wrk = pd.DataFrame([{"backend": b, "endpoint": e, "turn": 0, "p50_ms": ms}
                        for b in backends for e, ms in (("validate", 0.4), ("deferred", 0.6))])
    deliveries = pd.DataFrame([{"backend": b, "requested": 4, "accepted": 4, "emails_arrived": 4} for b in backends]
                              ).set_index("backend")
    return view_cost.ViewCost(pd.DataFrame(rows), wrk, deliveries)


def test_view_cost_is_the_difference_of_the_answered_requests_p50s():
    row = view_cost.summary(view(), "validate").loc["polled"]
    assert row["validate_n"] == 3 and row["deferred_n"] == 3  # the warm-up and the 404 left out
    assert row["enqueue_cost_us"] == pytest.approx(300.0)
    assert row["view_ratio"] == pytest.approx(1.3)
    assert row["wrk_enqueue_cost_us"] == pytest.approx(200.0)
    assert row["wrk_view_ratio"] == pytest.approx(1.5)


# -- open-loop points ------------------------------------------------------------------------------------------


def records(rows) -> pd.DataFrame:
    """Hand-built load-generator records: (due, sent, done, status) in ms; warm-up before 1,000 ms."""
    frame = pd.DataFrame(rows, columns=["due_ms", "sent_ms", "done_ms", "status"])
    frame["latency_ms"] = frame["done_ms"] - frame["due_ms"]
    frame["error"] = None
    frame["warmup"] = frame["due_ms"] < 1000
    return frame


def test_latency_growth_is_zero_for_a_steady_server_and_grows_with_a_queue():
    steady = records([(t, t, t + 300, 200) for t in range(1000, 3000, 100)])
    assert open_loop.latency_growth_ms(steady, 1.0, 2.0) == 0
    queued = records([(t, t, t + 300 + (t - 1000), 200) for t in range(1000, 3000, 100)])  # waits 1 ms per ms
    assert open_loop.latency_growth_ms(queued, 1.0, 2.0) == 1000


def test_answered_rps_counts_arrivals_below_saturation_and_the_whole_backlog_past_it():
    late = records([(t, t, t + 900, 200) for t in range(1000, 3000, 100)])  # 10/s, answered 0.9 s later
    assert open_loop.answered_rps(late, 1000, 3000, saturated=False) == 10
    # saturated: one answer every 250 ms from 1 s to 6 s, whatever was due when
    backlog = records([(1000 + 50 * i, 1000 + 50 * i, 1250 + 250 * i, 200) for i in range(20)])
    assert open_loop.answered_rps(backlog, 1000, 3000, saturated=True) == 4


def test_in_flight_mean_is_littles_law_and_the_peak_counts_overlaps():
    frame = records([(1000, 1000, 2000, 200), (1500, 1500, 2500, 200), (2000, 2000, 3000, 200)])
    mean, peak = open_loop.in_flight(frame, 1000, 3000)
    assert mean == 1.5  # 3 s held over a 2 s window
    assert peak == 2  # an answer at the instant of the next send is not an overlap


def test_refinement_bisects_between_the_highest_rate_that_held_and_the_lowest_that_ran_away():
    rows = [{"rate": 6.7, "ran_away": False}, {"rate": 213.3, "ran_away": False}, {"rate": 426.7, "ran_away": True}]
    assert open_loop.refined_rate(rows) == round(math.sqrt(213.3 * 426.7), 1)
    rows.append({"rate": 301.7, "ran_away": True})  # the middle ran away too: the next goes below it
    assert open_loop.refined_rate(rows) == round(math.sqrt(213.3 * 301.7), 1)
    assert open_loop.refined_rate([{"rate": 100.0, "ran_away": False}, {"rate": 105.0, "ran_away": True}]) is None
    assert open_loop.refined_rate([{"rate": 6.7, "ran_away": False}, {"rate": 13.3, "ran_away": False}]) is None
    assert open_loop.refined_rate([{"rate": 6.7, "ran_away": True}]) is None  # nothing held: no bracket


def test_memory_per_request_in_flight_is_the_slope_to_the_busiest_point():
    points = pd.DataFrame({"in_flight_peak": [1, 11, 5], "rss_mb_peak": [100.0, 101.0, 100.5],
                           "threads_peak": [10, 30, 20]})
    found = open_loop.memory_per_in_flight(points)
    assert found == {"kb_per_in_flight": pytest.approx(102.4), "threads_per_in_flight": 2.0, "in_flight_peak": 11}
    assert math.isnan(open_loop.memory_per_in_flight(points.iloc[:1])["kb_per_in_flight"])


def test_the_server_sampler_reads_a_real_process_tree():
    with samplers.ServerSampler(os.getpid(), every_s=0.01) as sampler:
        busy_before = samplers.machine_busy_s()
        sum(i * i for i in range(300_000))
        time.sleep(0.05)
    assert sampler.rss_mb_peak >= sampler.rss_mb_before > 10 and sampler.threads_peak >= 1
    assert samplers.machine_busy_s() > busy_before and samplers.kernel_busy_s() > 0


# -- the procedures on a real lab ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def labs(tmp_path_factory):
    with turns.side_by_side(tmp_path_factory.mktemp("protocols"), ["huey_redis"], web_workers=1, consumer_workers=1,
                            smtp_delay_s=0.0, huey_log_level="WARNING") as running:
        yield running


@pytest.mark.stack
def test_view_cost_counts_every_email_its_202s_promised(labs):
    measured = view_cost.measure(labs, "noop", requests=6, turns=2, warmup=1)
    row = measured.deliveries.loc["huey_redis"]
    assert row["requested"] == row["accepted"] == row["emails_arrived"] == 8  # 3 timed and 1 warm-up per turn
    assert (row["lost"], row["duplicated"]) == (0, 0)  # message by message: each turn's recipients its own
    assert set(measured.timings["label"]) == {"noop", "deferred"} and list(measured.timings["turn"].unique()) == [0, 1]


@pytest.mark.stack
def test_pickup_from_the_request_to_the_smtp_server_is_measured_after_each_idle_period(labs):
    frame = pickup.request_to_smtp(labs, [0.2], 2, "default")
    assert len(frame) == 2 and (frame["status"] == 202).all()
    assert (frame["pickup_ms"] > 0).all() and (frame["pickup_ms"] < 5000).all()
    assert frame["idle_cpu_pct"].notna().all()


@pytest.mark.stack
def test_a_filled_queue_drains_at_a_measured_rate(labs):
    drained = drain.through_each_api(labs, 300, tuned=False).loc["huey_redis"]
    assert drained["queued_at_start"] > 0 and drained["drain_per_s"] > 0
    assert labs["huey_redis"].queue_depth() == 0


def test_a_slow_drain_cuts_the_next_count_to_a_few_seconds_and_a_grown_count_is_kept():
    def drained(count: int, rate: float):
        return drain._Drained(None, count, rate, pd.DataFrame(), count, count)

    assert drain.next_count(500, drained(500, 34.0)) == int(34.0 * drain.PACED_DRAIN_S)  # RQ: 170, not 500
    assert drain.next_count(500, drained(500, 5000.0)) == 500  # a fast drain keeps its count
    assert drain.next_count(500, drained(500, 2.0)) == drain.PACED_DRAIN_MIN
    assert drain.next_count(500, drained(1000, 34.0)) == 1000  # grown: the first workers up emptied the queue
    assert drain.next_count(500, drained(500, float("nan"))) == 500


def test_the_lab_s_own_worker_count_drains_last_so_that_none_restarts_after():
    assert drain.drain_order((1, 2, 4), own=1) == [2, 4, 1]
    assert drain.drain_order((1, 2, 4), own=4) == [1, 2, 4]
    assert drain.drain_order((1, 2), own=3) == [1, 2]


@pytest.mark.stack
def test_drains_at_each_worker_count_are_read_once_all_are_up_and_the_own_count_comes_back(labs):
    lab = labs["huey_redis"]
    own = lab.config.consumer_workers
    drained = drain.by_concurrency(lab, 200, workers=(2,))  # one count: each costs a fill and a restart
    assert list(drained["workers"]) == [2] and (drained["drain_per_s"] > 0).all()
    # a rate read on less than a quarter of a fill was made again with more
    assert (drained["queued_when_all_up"] >= drained["enqueued_total"] / 4).all()
    assert lab.config.consumer_workers == own and lab.queue_depth() == 0


@pytest.mark.stack
def test_the_kill_episode_accounts_for_every_accepted_email(labs):
    plan = kill_episode.KillPlan(kills=1, rate=5.0, smtp_delay_s=0.1, first_kill_s=0.5, down_s=0.3, gap_s=0.3,
                                 restart_s=1.0, settle_timeout_s=30.0, quiet_s=0.5)
    table, timeline = kill_episode.kill_workers_under_load(labs, plan, late_check_s=0.3)
    row = table.loc["huey_redis"]
    assert row["settled"] and row["kills"] == 1 and len(timeline) == 1
    assert row["requested"] > 0 and row["delivered"] + row["lost"] == row["requested"]
    assert row["late_copies"] == 0 and timeline["processes_killed"].iloc[0] >= 1


def test_what_the_user_is_told_follows_the_status_and_the_wait():
    from helpers.protocols import user_told

    assert user_told.in_words({"status": 202, "waited_s": 0.004, "task_state": "failed"}, 2.0) == (
        "accepted (202) in 4 ms; the task then failed")
    stalled = user_told.in_words({"status": 502, "waited_s": 1.9}, 2.0)
    assert stalled == "waited 1.9 s (the SMTP timeout), then error 502"
    assert user_told.in_words({"status": 502, "waited_s": 0.31}, 2.0) == "error 502 after 310 ms"
    assert user_told.smtp_faults(2.0)["stall"]["delay_s"] == 4.0


@pytest.mark.stack
def test_the_published_drain_times_a_small_backlog_and_leaves_the_workers_as_they_were(labs):
    from helpers.protocols import published

    lab = labs["huey_redis"]
    workers_before = lab.config.consumer_workers
    measured = published.drain_like_python_queue_benchmark(lab, jobs=200, workers=2)
    assert measured["setting"] == "huey_processes" and measured["published_seconds"] is None
    assert measured["published_jobs_per_s"] is None and measured["jobs_per_s"] == 200 / measured["seconds"]
    assert 0 < measured["seconds"] < 60 and measured["seconds_after_ready"] < measured["seconds"]
    assert measured["enqueue_s"] > 0 and measured["drain_per_s"] > 0
    assert lab.queue_depth() == 0 and lab.config.consumer_workers == workers_before
    assert lab.config.consumer_worker_type == "thread" and lab.config.huey_health_check
