"""Every claim of notebook 05 that a mechanism of the job ledger exists for fails when that mechanism is switched off
(LabConfig.ledger_off: LAB_LEDGER_PROVIDER_CHECK, _RETRIES, _RECONCILER, _ON_COMMIT), judged by
helpers.experiments.faults.verdict from one short fault episode on the ledger design, chosen so that the mechanism
matters; with every mechanism on, the same episodes pass the same claims. Real stack, one lab: the site's processes
are restarted with each switch (they read it when they start)."""

from dataclasses import replace

import pytest

from helpers.experiments import faults
from helpers.stack import Lab

# Short episodes, the ledger alone. A kill under a provider that records each message before its delay lands
# between the 250 and the commit (the provider check's case); a 4xx that lasts a moment is survived only by
# retries the reconciler enqueues; a slow commit lets a task enqueued before it run first.
EPISODES = {
    "kill_after_250": faults.FaultPlan("consumer_kill", rate=12, duration_s=1.0, fault_at_s=0.4, fault_for_s=0.4,
                                       smtp_delay_s=0.25, record_first=True, settle_timeout_s=4,
                                       designs=("ledger",)),
    "smtp_4xx": faults.FaultPlan("smtp_4xx", rate=15, duration_s=1.0, fault_at_s=0.3, fault_for_s=0.6,
                                 settle_timeout_s=4, designs=("ledger",)),
    "slow_commit": faults.FaultPlan(faults.SLOW_COMMIT, rate=3, duration_s=1.0, fault_at_s=0.3, hold_ms=200,
                                    settle_timeout_s=4, designs=("ledger",)),
}
# mechanism switched off -> (its episode, the claims (faults.CLAIMS keys) it guards)
MUTATIONS = {
    "provider_check": ("kill_after_250", ["ledger_duplicated"]),
    "retries": ("smtp_4xx", ["ledger_lost", "ledger_retried"]),
    "reconciler": ("smtp_4xx", ["ledger_lost", "ledger_delivered"]),  # no retry enqueued: lost, left pending
    "on_commit": ("slow_commit", ["ledger_on_commit"]),
}


@pytest.fixture(scope="module")
def lab():
    config = {**faults.fault_lab("huey_sqlite"), "web_workers": 1, "consumer_workers": 3, "reconcile_every_s": 0.3,
              "ledger_deadline_s": 1.5}
    with Lab(**config) as running:
        yield running


def switch_off(lab, *mechanisms: str) -> None:
    """Restart the site's processes with only `mechanisms` of the ledger off (unless they run so already)."""
    if lab.config.ledger_off != mechanisms:
        lab.restart_site(ledger_off=mechanisms)


def judged(lab, *plans: faults.FaultPlan) -> dict[str, bool | None]:
    """Play the episodes; notebook 05's verdict (quick mode) by claim key, the overload's claims left neutral."""
    table, timeline = faults.run_faults(lab, list(plans), late_check_s=0.3)
    held = faults.verdict(faults.without_overload(faults.key_figures(table, timeline)), quick=True)
    return {key: held[text] for key, text in faults.CLAIMS.items()}


@pytest.mark.stack
def test_with_every_mechanism_on_the_episodes_pass_the_claims_they_guard(lab):
    switch_off(lab)
    held = judged(lab, *EPISODES.values())
    guarded = {claim for _, claims in MUTATIONS.values() for claim in claims}
    assert {claim: held[claim] for claim in guarded} == dict.fromkeys(guarded, True)


@pytest.mark.stack
@pytest.mark.parametrize("mechanism", list(MUTATIONS))
def test_with_one_mechanism_off_the_claim_it_guards_fails(lab, mechanism):
    episode, claims = MUTATIONS[mechanism]
    switch_off(lab, mechanism)
    plan = EPISODES[episode]
    if mechanism == "reconciler":  # its jobs stay open: settling gives up, after a shorter wait than it needs
        plan = replace(plan, settle_timeout_s=1.5)
    held = judged(lab, plan)
    assert {claim: held[claim] for claim in claims} == dict.fromkeys(claims, False)
