"""Every notebook's claims are its experiments module's verdict(figures): all PASS on the committed reference's
figures, and each claim FAILS, alone, once its figures are moved past its threshold (a claim no figure can fail is a
defect). MOVED holds, per notebook and claim key, the figures that move it; a claim without an entry fails the suite."""

import importlib
import json

import nbformat
import pytest

from helpers import REPO_ROOT
from helpers.runs import verdicts

REFERENCE = REPO_ROOT / "data" / "reference" / "full-run"

# notebook -> claim key -> figures changed from the reference's, or a list of such changes (each must fail the claim).
# A change that sits at a threshold set by other figures is a function of the reference's figures, so that a refreshed
# reference keeps it past the threshold.

def declared(f: dict, delivery: str) -> str:
    """The first backend of notebook 09's figures that declares `delivery`, was held by its killed worker and whose
    declared redelivery fits in the run's wait (the claims judge only those)."""
    from helpers.experiments.which_setup import fits_the_wait

    return next(b for b in f["backends"]
                if f[f"{b}_delivery"] == delivery and f[f"{b}_recovery_held"] and fits_the_wait(f, b))


def at_most_once_twin(f: dict) -> str:
    return next(b for b in f["backends"] if f[f"{b}_setting"] == "production" and f[f"{b}_delivery"] == "at-most-once")


def transactional(f: dict, declared: bool = True) -> str:
    """The first backend whose enqueue is (or is not, and is not held until the commit either) in the transaction."""
    return next(b for b in f["backends"] if f[f"{b}_enqueue_in_transaction"] is declared
                and (declared or not f[f"{b}_enqueue_on_commit"]))


MOVED = {
    "01-blocking-vs-deferred": {
        "answered": {"failed_requests": 1},
        "delivered": [{"emails_lost": 1}, {"emails_lost": 1, "emails_duplicated": 1},  # totals agree
                      {"emails_lost": 0, "emails_duplicated": 1}],
        "blocking_waits": {"blocking_p50_ms": 299.0},
        "deferred_10x": lambda f: {"deferred_p50_ms": f["blocking_p50_ms"] / 9.99},
        "deferred_near_noop": {"noop_p50_ms": 0.5, "deferred_p50_ms": 30.6},
    },
    "02-under-load": {
        "s_covers_smtp": {"service_s": 0.099},
        "p50_near_s": [lambda f: {"blocking_p50_ms_lowest_rate": 1.6e3 * f["service_s"]},
                       lambda f: {"blocking_p50_ms_lowest_rate": 0.7e3 * f["service_s"]}],
        "p99_climbs": {"blocking_p99_ms_below_capacity": 111.3},
        "p99_past_capacity": lambda f: {"blocking_p99_ms_highest_rate": 2.9e3 * f["service_s"],
                                        "closed_p99_ms_most_users": 2.5e3 * f["service_s"]},
        "saturates_at_capacity": [{"saturation_ratio": 0.79}, {"saturation_ratio": 1.21}],
        "web_cpu": {"blocking_cpu_web_pct_highest_rate": 50.0},
        "deferred_p50": lambda f: {"deferred_p50_ms_max": f["service_s"] * 1e3 / 10 + 0.01},
        "deferred_p99": {"deferred_service_p99_ms_at_saturation": 50.0},
        "consumer_sends": {"consumer_cpu_pct_deferred_highest_rate": 1.0},
        "closed_levels_off": lambda f: {"closed_throughput_max": 0.79 * f["capacity_c_over_s"]},
        "littles_law": {"closed_littles_law_max_error": 0.21},
        "open_vs_closed": lambda f: {"closed_p99_ms_most_users": f["blocking_p99_ms_highest_rate"]},
    },
    "03-the-work-still-happens": {
        "response_3x": lambda f: {"thumbnail_deferred_p50_ms": f["thumbnail_blocking_p50_ms"] / 1.5},
        "end_to_end_near_blocking": [{"thumbnail_end_to_end_over_blocking": 0.35},
                                     {"email_end_to_end_over_blocking": 2.1}],
        "completed": [{"tasks_not_completed": 1}, {"tasks_followed": 0}],
        "states_once": {"tasks_with_a_state_not_once": 1},
        "backlog_grew": {"backlog_peak_sampled": 40.0},
        "last_waited_longer": lambda f: {"backlog_last_wait_ms": f["backlog_first_wait_ms"]},
        "littles_law": {"sampled_mean_depth": 31.0},
        "tuned_pickup_20ms": {"pickup_p50_ms_tuned": 21.0},
        "tuned_pickup_sooner": lambda f: {"pickup_p50_ms_default": f["pickup_p50_ms_tuned"]},
        "tuned_idle_cpu": {"idle_cpu_pct_tuned": 0.2},
        "process_thumbnails": {"process_over_thread_thumbnail": 1.1},
        "process_email": {"process_over_thread_email": 1.15},
        "tasks_backends": [{"djtasks_statuses": {"huey": [202], "immediate": [200, 500]}},
                           lambda f: {"djtasks_response_p50_ms_immediate": 4.9 * f["djtasks_response_p50_ms_huey"]}],
        "djtasks_enqueue_cost": lambda f: {"enqueue_p50_us_djtasks": f["enqueue_p50_us_native"]},
    },
    "04-what-the-user-sees": {
        "all_sent": [{"failed_trials": 1}, {"emails_lost": 1},
                     {"emails_lost": 1, "emails_duplicated": 1},  # totals agree
                     {"emails_lost": 0, "emails_duplicated": 1}],
        "form_ttfb_waits": {"ttfb_blocking_ms": 299.0},
        "form_ttfb_cut": lambda f: {"ttfb_deferred_ms": f["ttfb_blocking_ms"] - 0.45 * f["smtp_delay_ms"]},
        "form_ttfb_good": {"ttfb_deferred_ms": 801.0, "ttfb_blocking_ms": 1000.0},
        "form_request_start": {"ttfb_request_blocking_ms": 150.0},
        "fetch_ttfb_same": lambda f: {"ttfb_fetch_deferred_ms": f["ttfb_fetch_blocking_ms"] + f["smtp_delay_ms"] / 2},
        "fetch_feedback_sooner": lambda f: {"feedback_deferred_ms":
                                              f["feedback_blocking_ms"] - 0.45 * f["smtp_delay_ms"]},
        "fetch_inp_same": lambda f: {"inp_deferred_ms": f["inp_blocking_ms"] + 0.6 * f["smtp_delay_ms"]},
        "form_inp_out": {"inp_form_blocking_ms": 150.0},
        "xhr_inp_waits": {"inp_xhr_blocking_ms": 299.0},
        "xhr_inp_good": {"inp_xhr_deferred_ms": 201.0, "inp_xhr_blocking_ms": 400.0},
        "xhr_inp_cut": lambda f: {"inp_xhr_deferred_ms": f["inp_xhr_blocking_ms"] - 0.45 * f["smtp_delay_ms"]},
        "delivered_later": {"delivered_deferred_ms": 300.0},
    },
    "05-faults": {
        "loads_met": {"episodes_missing_a_load": 1},
        "settled": lambda f: {"episodes_settled": f["episodes"] - 1},
        "no_late_copy": {"late_copies": 1},
        "ledger_lost": {"lost": 1},
        "ledger_duplicated": {"duplicated": 1},
        "ledger_stall": [{"stall_duplicates": 1}, {"stall_requested": 0}],
        "ledger_delivered": {"ledger_missed": 1},
        "ledger_agrees": {"ledger_disagreements": 1},
        "ledger_permanent": [lambda f: {"permanent_failed": f["permanent_requested"] - 1}, {"ledger_stuck": 1},
                             {"permanent_requested": 0, "permanent_failed": 0}],
        "ledger_retried": {"smtp_retries": 0},
        "ledger_on_commit": [{"slow_commit_reenqueued": 1}, {"slow_commit_requested": 0}],
        "ledger_confirmed": {"confirmed_by_provider": 0},
        "plain_smtp_lost": {"plain_smtp_lost": 0},
        "retries_recover": [lambda f: {"retries_vs_plain_smtp_lost": {b: [p, p] for b, (p, _) in
                                                                      f["retries_vs_plain_smtp_lost"].items()}},
                            {"retries_vs_plain_smtp_lost": {}}],
        "plain_kills_lost": lambda f: {"kill_lost_plain": f["kill_loss_bound"] + 1},
        "web_restart": [{"web_restart_lost": 1}, {"web_restart_failed_requests": 0}],
        "bounded_depth": lambda f: {"overload_max_depth_bounded": f["overload_bound"] + f["overload_web_workers"] + 1},
        "bounded_shed": [{"overload_shed_503": 0}, {"overload_retry_after_s": None}],
        "unbounded_grew": lambda f: {"overload_max_depth_unbounded": f["overload_bound"] + f["overload_web_workers"]},
        "unbounded_drain": lambda f: {"overload_drain_s_unbounded": f["overload_drain_s_bounded"]},
        "overload_settled": [{"overload_settled": 1}, {"overload_late_copies": 1}],
        "overload_lost": {"overload_lost": 1},
        "overload_5xx": {"overload_server_5xx": 1},
    },
    "06-scale-out": {
        "delivered": [{"huey_redis_view_lost": 1},
                      lambda f: {"huey_sqlite_view_accepted": f["huey_sqlite_view_accepted"] + 1},
                      {"huey_redis_view_lost": 1, "huey_redis_view_duplicated": 1}],  # totals agree
        "enqueue_cost": lambda f: {"huey_sqlite_enqueue_p50_us": f["huey_redis_enqueue_p50_us"]},
        "pickup": lambda f: {
            "huey_redis_pickup_enqueue_to_start_p50_ms": f["huey_sqlite_pickup_enqueue_to_start_p50_ms"]},
        "drain_one": lambda f: {"huey_sqlite_drain_tasks_per_s": f["huey_redis_drain_tasks_per_s"]},
        "drain_four": [{"huey_redis_drain_4_consumers_speedup": 0.9}, {"huey_redis_drain_4_consumers_speedup": None}],
        "contention_errors": {"huey_sqlite_enqueue_errors": 1},
        "load_errors": {"huey_redis_load_errors": 1},
        "server_cpu": {"huey_redis_server_cpu_pct": 80.0},
    },
    "07-which-queue": {
        "view_delivered": [{"celery_redis_view_lost": 1},
                           {"celery_redis_view_lost": 1, "celery_redis_view_duplicated": 1}],  # totals agree
        "load_delivered": [{"huey_redis_e2e_lost": 1},
                           {"huey_redis_e2e_lost": 1, "huey_redis_e2e_duplicated": 1}],
        "kills_settled": [{"rq_redis_settled_after_kills": False}, {"rq_redis_late_copies_on_kill": 1}],
        "kills_kept_delivery": [{"huey_redis_duplicated_on_kill": 1}, {"celery_redis_acks_late_lost_on_kill": 1}],
        "kills_lost": [{"huey_sqlite_lost_on_kill": 0}, {"huey_sqlite_kills": 0}],
        "blocking_pickup": {"huey_redis_pickup_request_to_smtp_p50_ms": 300.0},
        "rollback": [{"huey_sqlite_runs_after_rollback": 0.0}, {"djtasks_db_sqlite_runs_after_rollback": 1.0}],
        "in_transaction": [{"djtasks_db_postgres_runs_before_commit": 1.0},
                           {"djtasks_db_postgres_runs_after_commit": 2.0}],
        "on_commit": [{"rq_redis_on_commit_ran_before_commit": 1.0}, {"huey_redis_tx_never_ran": 1.0}],
        "tuning_knob": [{"huey_sqlite_tuned_pickup_request_to_smtp_p50_ms": 200.0},
                        {"djtasks_db_sqlite_tuned_pickup_request_to_smtp_p50_ms": None}],
    },
    "09-which-setup": {
        "load_delivered": [lambda f: {f"{f['backends'][0]}_e2e_lost": 1},
                           lambda f: {f"{f['backends'][0]}_e2e_lost": 1,
                                      f"{f['backends'][0]}_e2e_duplicated": 1}],  # totals agree
        "kills_kept_delivery": [lambda f: {f"{declared(f, 'at-least-once')}_lost_on_kill": 1},
                                lambda f: {f"{declared(f, 'at-most-once')}_duplicated_on_kill": 1}],
        "production_no_worse": lambda f: {f"{at_most_once_twin(f)}_lost_on_kill":
                                          f[f"{at_most_once_twin(f)}_requested_under_kills"]},
        "recovery_as_declared": [lambda f: {f"{declared(f, 'at-least-once')}_recovery_s": None},
                                 lambda f: {f"{declared(f, 'at-most-once')}_recovery_s": 1.0}],
        "enqueue_precise": [lambda f: {f"{f['backends'][0]}_enqueue_in_request_ci_us": [1.0, 1e6]},
                            lambda f: {f"{f['backends'][0]}_enqueue_inprocess_us": -1.0}],
        "rollback": [lambda f: {f"{transactional(f)}_runs_after_rollback": 1.0},
                     lambda f: {f"{transactional(f, False)}_runs_after_rollback": 0.0}],
        "on_commit": [lambda f: {f"{f['backends'][0]}_on_commit_ran_before_commit": 1.0},
                      lambda f: {f"{f['backends'][-1]}_tx_never_ran": 1.0}],
    },
    "08-does-async-fix-it": {
        "async_5x": {"async_saturation_rps": 64.0, "thread_pool_saturation_rps": 60.0},
        "async_waits": [{"async_p50_ms_min": 299.0}, {"in_request_p50_ms_min": 299.0}],
        "deferred_fast": {"deferred_p50_ms": 30.0},
        "sync_at_capacity": {"sync_saturation_rps": 9.0},
        "thread_sensitive_3x": {"thread_sensitive_saturation_rps": 38.0},
        "slot_bound": [{"gthread_ran_away": False}, {"gthread_saturation_rps": 60.0},
                       {"thread_pool_saturation_rps": 12.0}],
        "smtp_failure": [{"fault_in_request_all_5xx": False}, {"fault_stall_waited_timeout": False},
                         {"fault_deferred_accepted_then_failed": False}],
        "async_memory": lambda f: {"async_kb_per_in_flight": 0.1 * 1024 * f["sync_mb_per_slot"]},
        "async_thread": {"async_threads_per_in_flight": 0.49},
    },
}
# Claims held to a looser bound in quick mode, stated in their text: figures past that bound too.
QUICK_MOVED = {
    ("02-under-load", "saturates_at_capacity"): {"saturation_ratio": 0.69},
    ("02-under-load", "closed_levels_off"): lambda f: {"closed_throughput_max": 0.69 * f["capacity_c_over_s"]},
    ("03-the-work-still-happens", "response_3x"):
        lambda f: {"thumbnail_deferred_p50_ms": f["thumbnail_blocking_p50_ms"] / 1.9},
    ("03-the-work-still-happens", "tuned_pickup_20ms"): {"pickup_p50_ms_tuned": 51.0},
    ("03-the-work-still-happens", "process_thumbnails"): {"process_over_thread_thumbnail": 0.45},
    ("06-scale-out", "drain_four"): {"huey_redis_drain_4_consumers_speedup": None},
    ("07-which-queue", "kills_lost"): {"huey_sqlite_kills": 0},
    ("08-does-async-fix-it", "deferred_fast"): {"deferred_p50_ms": 60.0},
}
CASES = [(nb, key, moved) for nb, claims in MOVED.items() for key, changes in claims.items()
         for moved in (changes if isinstance(changes, list) else [changes])]


def reference(notebook: str) -> dict:
    return json.loads((REFERENCE / f"{notebook}.run.json").read_text())


def moved_figures(notebook: str, moved) -> dict:
    """The reference's figures with `moved` (a dict, or a function of the reference's figures giving one) applied."""
    figures = reference(notebook)["figures"]
    return {**figures, **(moved(figures) if callable(moved) else moved)}


def failed(notebook: str, moved, quick: bool = False) -> list[str]:
    checks = verdicts.judge(notebook, moved_figures(notebook, moved), quick=quick)
    return [claim for claim, held in checks.items() if held is False]


@pytest.mark.parametrize("notebook", verdicts.MODULES)
def test_the_verdict_on_the_reference_figures_is_all_pass_as_the_reference_recorded(notebook):
    """Claim for claim, in order (a claim reworded since keeps its place)."""
    run = reference(notebook)
    checks = verdicts.judge(notebook, run["figures"])
    assert checks == {claim: True for claim in verdicts.module(notebook).CLAIMS.values()}
    assert list(run["verdict"].values()) == list(checks.values())


@pytest.mark.parametrize(("notebook", "key", "moved"), CASES, ids=[f"{nb[:2]}-{key}-{i}" for i, (nb, key, _) in
                                                                   enumerate(CASES)])
def test_figures_moved_past_a_threshold_fail_that_claim(notebook, key, moved):
    claim = verdicts.claim(notebook, key)
    assert failed(notebook, moved) == [claim], moved


@pytest.mark.parametrize(("notebook", "key"), [(nb, key) for nb in MOVED for key in verdicts.module(nb).CLAIMS])
def test_every_claim_checked_in_quick_mode_fails_there_too(notebook, key):
    """A full-mode claim is None in quick mode; any other fails on its quick-mode figures (QUICK_MOVED, else the
    first of MOVED)."""
    claim = verdicts.claim(notebook, key)
    changes = MOVED[notebook][key]
    moved = QUICK_MOVED.get((notebook, key), changes[0] if isinstance(changes, list) else changes)
    quick = verdicts.judge(notebook, moved_figures(notebook, moved), quick=True)
    if claim.endswith(verdicts.FULL_MODE_ONLY):
        assert quick[claim] is None
    else:
        assert quick[claim] is False, f"{claim!r} held in quick mode on {moved}"


@pytest.mark.parametrize("notebook", verdicts.MODULES)
def test_every_claim_of_every_verdict_has_figures_that_fail_it(notebook):
    assert list(MOVED[notebook]) == list(verdicts.module(notebook).CLAIMS)


def test_every_notebook_with_a_verdict_cell_has_a_verdict_function():
    numbered = {path.stem for path in (REPO_ROOT / "notebooks").glob("0[1-9]-*.ipynb")}
    assert numbered == set(verdicts.MODULES) | set(verdicts.AWAITING_REFERENCE)
    for notebook, name in verdicts.AWAITING_REFERENCE.items():
        assert notebook not in verdicts.MODULES
        assert callable(importlib.import_module(f"helpers.experiments.{name}").verdict)


@pytest.mark.parametrize("notebook", verdicts.MODULES)
def test_the_verdict_cell_calls_the_module_and_its_committed_output_is_the_quick_mode_verdict(notebook):
    """nbval compares the committed output (a quick-mode run): the claims of verdict(), in order, each PASS or not
    checked in quick mode."""
    cell = nbformat.read(REPO_ROOT / "notebooks" / f"{notebook}.ipynb", as_version=4).cells[-1]
    assert ".verdict(figures, quick=quick))" in cell.source and "runs.verdict(run_dir, " in cell.source
    quick = verdicts.judge(notebook, reference(notebook)["figures"], quick=True)
    expected = "".join(f"{claim}: {verdicts.NOT_CHECKED if held is None else 'PASS'}\n"
                       for claim, held in quick.items())
    assert "".join(output.get("text", "") for output in cell.outputs) == expected


def test_runs_verdict_prints_every_claim_and_records_only_those_checked(tmp_path, capsys):
    full_only = f"a slow comparison{verdicts.FULL_MODE_ONLY}"
    checks = verdicts.claims({"a": "a claim", "b": full_only}, {"a": True, "b": False}, quick=True)
    assert checks == {"a claim": True, full_only: None}
    assert verdicts.verdict(tmp_path, checks) is True
    assert capsys.readouterr().out == f"a claim: PASS\n{full_only}: {verdicts.NOT_CHECKED}\n"
    recorded = json.loads((tmp_path / "run.json").read_text())
    assert recorded["verdict"] == {"a claim": True} and recorded["not_checked"] == [full_only]
    assert verdicts.verdict(tmp_path, verdicts.claims({"a": "a claim", "b": full_only}, {"a": True, "b": False})) \
        is False


def test_a_verdict_must_check_every_claim_it_names_and_no_other():
    with pytest.raises(ValueError, match="b"):
        verdicts.claims({"a": "a claim", "b": "another"}, {"a": True})
