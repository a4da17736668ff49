"""Notebook 07's pure functions (helpers.experiments.which_queue): the matrix flattened into key figures, and the
verdict's claims, on small frames (no lab)."""

import numpy as np
import pandas as pd
import pytest

from helpers.experiments import which_queue as wq
from helpers.protocols import end_to_end


def deliveries(backends=("polled", "blocking")) -> pd.DataFrame:
    """view_cost.measure()'s deliveries: every deferred request answered 202 and its email arrived, once."""
    return pd.DataFrame([{"backend": b, "requested": 4, "accepted": 4, "emails_arrived": 4, "lost": 0, "duplicated": 0}
                         for b in backends]).set_index("backend")


def table(changes=None):
    """The matrix of two backends: a polled one with a tuning knob whose tasks share the site's transaction, and a
    blocking pop outside it; `changes` = {(backend, column): value}."""
    base = {"label": "x", "delivery": "at-most-once", "has_workers": True, "validate_p50_ms": 1.0,
            "deferred_p50_ms": 1.3, "enqueue_cost_us": 300.0, "view_ratio": 1.3, "wrk_enqueue_cost_us": 200.0,
            "wrk_view_ratio": 1.5, "pickup_n": 3, "pickup_idle_cpu_pct": 0.3, "e2e_sent": 20, "e2e_accepted": 20,
            "e2e_delivered": 20, "e2e_lost": 0, "e2e_duplicated": 0, "e2e_response_p50_ms": 3.0,
            "e2e_response_p99_ms": 9.0, "e2e_completion_p50_ms": 8.0,
            "e2e_completion_p99_ms": 40.0, "drain_per_s": 1000.0, "kill_kills": 5,
            "kill_requested": 50, "kill_duplicated": 0, "kill_late_copies": 0, "kill_settled": True,
            "kill_stuck": 0, "tx_trials": 3, "ran_before_commit": 0, "ran_after_commit": 3,
            "on_commit_ran_before_commit": 0, "never_ran": 0, "servers_mb": 0.0, "worker_mb": 80.0, "web_mb": 100.0}
    frame = pd.DataFrame([
        {**base, "backend": "polled", "blocking_pickup": False, "tuning_knob": "poll_interval_s=0.02",
         "enqueue_in_transaction": True, "pickup_p50_ms": 500.0, "pickup_p99_ms": 990.0, "tuned_pickup_p50_ms": 20.0,
         "tuned_pickup_p99_ms": 30.0, "tuned_pickup_idle_cpu_pct": 10.0, "kill_lost": 2, "kill_stuck": 2,
         "ran_after_rollback": 0},
        {**base, "backend": "blocking", "blocking_pickup": True, "tuning_knob": "", "enqueue_in_transaction": False,
         "pickup_p50_ms": 5.0, "pickup_p99_ms": 9.0, "tuned_pickup_p50_ms": np.nan, "tuned_pickup_p99_ms": np.nan,
         "tuned_pickup_idle_cpu_pct": np.nan, "kill_lost": 1, "ran_after_rollback": 3, "ran_before_commit": 3,
         "ran_after_commit": 0},
    ]).set_index("backend")
    for (backend, column), value in (changes or {}).items():
        frame.loc[backend, column] = value
    return frame


def test_key_figures_are_flat_named_per_backend_and_plain():
    figures = wq.key_figures(table(), deliveries())
    assert figures["backends"] == ["polled", "blocking"]
    assert figures["polled_view_ratio"] == 1.3 and figures["polled_enqueue_cost_us"] == 300.0
    assert figures["blocking_tuned_pickup_request_to_smtp_p50_ms"] is None  # no knob: None, not NaN
    assert figures["polled_lost_on_kill"] == 2 and figures["blocking_runs_after_rollback"] == 3
    assert figures["tx_trials"] == 3 and figures["polled_view_emails_arrived"] == 4
    for backend in ("polled", "blocking"):  # what issue 12 asks the bench to print for every backend
        for name in ("view_ratio", "enqueue_cost_us", "pickup_request_to_smtp_p50_ms", "drain_per_s", "e2e_p99_ms",
                     "lost_on_kill", "duplicated_on_kill", "runs_after_rollback", "runs_before_commit"):
            assert f"{backend}_{name}" in figures


def checks(full=True, changes=None):
    t = table(changes)
    return wq.verdict(wq.key_figures(t, deliveries()), quick=not full)


def test_every_claim_holds_on_a_matrix_that_bears_it_out():
    assert all(checks().values())
    assert all(checks(full=False).values())


@pytest.mark.parametrize(("change", "claim"), [
    ({("polled", "kill_duplicated"): 1}, "under kills each backend kept its declared delivery"),
    ({("blocking", "delivery"): "at-least-once"}, "under kills each backend kept its declared delivery"),
    ({("polled", "kill_lost"): 0}, "the kills lost accepted emails"),
    ({("blocking", "kill_kills"): 0}, "the kills lost accepted emails"),
    ({("blocking", "pickup_p50_ms"): 300.0}, "every blocking-pop backend picked up at least 2x sooner"),
    ({("polled", "ran_after_rollback"): 1}, "rolled back:"),
    ({("blocking", "ran_after_rollback"): 2}, "rolled back:"),
    ({("polled", "ran_before_commit"): 1}, "in its transaction"),
    ({("blocking", "on_commit_ran_before_commit"): 1}, "with transaction.on_commit"),
    ({("polled", "never_ran"): 1}, "with transaction.on_commit"),
    ({("polled", "tuned_pickup_p50_ms"): 300.0}, "each polling backend's tuning knob"),
    ({("polled", "kill_settled"): False}, "every backend's kills settled"),
    ({("blocking", "e2e_delivered"): 19, ("blocking", "e2e_lost"): 1}, "under open-loop load every backend"),
    ({("blocking", "e2e_lost"): 1, ("blocking", "e2e_duplicated"): 1}, "under open-loop load every backend"),
    ({("polled", "e2e_accepted"): 19, ("polled", "e2e_delivered"): 19}, "under open-loop load every backend"),
])
def test_each_claim_fails_when_its_evidence_does(change, claim):
    failed = [name for name, ok in checks(changes=change).items() if not ok]
    assert len(failed) == 1 and failed[0].startswith(claim), failed


def test_one_loss_and_one_duplicate_through_the_view_fail_its_claim_though_the_totals_agree():
    cancelled = deliveries().assign(lost=[1, 0], duplicated=[1, 0])  # emails_arrived still equals accepted
    figures = wq.key_figures(table(), cancelled)
    assert (figures["polled_view_lost"], figures["polled_view_duplicated"]) == (1, 1)
    failed = [name for name, ok in wq.verdict(figures).items() if not ok]
    assert len(failed) == 1 and failed[0].startswith("every backend delivered every email"), failed


def test_quick_mode_does_not_require_a_single_kill_to_find_a_task_in_flight():
    no_loss = {("polled", "kill_lost"): 0, ("blocking", "kill_lost"): 0}
    assert not all(checks(True, no_loss).values())
    assert all(checks(False, no_loss).values())


def test_the_claim_texts_are_the_same_in_quick_and_full_mode():
    assert list(checks(full=True)) == list(checks(full=False))


def test_the_quick_subset_holds_every_kind_of_backend_the_verdict_compares():
    from helpers.stack.queues import backend_class

    kinds = [backend_class(name) for name in wq.QUICK_BACKENDS]
    assert {k.blocking_pickup for k in kinds} == {True, False}
    assert {k.enqueue_in_transaction for k in kinds} == {True, False}
    assert any(k.tuned_worker_config and not k.blocking_pickup for k in kinds)


def test_end_to_end_summary_takes_the_accepted_measured_requests_and_counts_the_undelivered():
    frame = pd.DataFrame({
        "backend": ["a"] * 5, "warmup": [True, False, False, False, False], "status": [202, 202, 202, 202, 503],
        "latency_ms": [100.0, 2.0, 4.0, 6.0, 1.0], "completion_ms": [500.0, 10.0, 30.0, np.nan, np.nan],
        "copies": [1, 2, 1, 0, 0]})
    row = end_to_end.summary(frame).loc["a"]
    assert (row["sent"], row["accepted"], row["delivered"]) == (4, 3, 2)  # the warm-up out, the 503 not accepted
    assert (row["lost"], row["duplicated"]) == (1, 1)  # message by message: they do not cancel out
    assert row["response_p50_ms"] == 4.0 and row["completion_p50_ms"] == 20.0


def test_findings_take_every_number_from_the_figures():
    figures = wq.key_figures(table(), deliveries())
    text = wq.findings_markdown(figures, {"polled": "Polled", "blocking": "Blocking"})
    assert "*Polled* 300 µs; *Blocking* 300 µs" in text
    assert "*Polled* 40.0 ms; *Blocking* 40.0 ms" in text  # the completion p99
    assert "*Blocking* n/a" in text  # no tuning knob
