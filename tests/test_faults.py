"""Faults on the real stack (SMTP server, gunicorn, Huey consumer, the ledger's reconciler), no mocks: the SMTP
server's switchable faults, a consumer SIGKILL under load that the ledger survives, loopback-only servers and
owner-only run files. Then the verdict on small hand-built records: a fault that missed a design, an episode that
did not settle, the ledger held against the SMTP record per message (the accounting itself: tests/test_protocols.py)."""

import json
import smtplib
import stat
from dataclasses import replace

import pandas as pd
import pytest

from helpers import REPO_ROOT
from helpers.experiments import faults
from helpers.protocols.messages import account
from helpers.stack import Lab
from helpers.stack.smtp_sink import set_fault, set_provider


@pytest.fixture(scope="module")
def lab():
    with Lab(ledger=True, smtp_delay_s=0.05, smtp_timeout_s=1.0, ledger_deadline_s=1.5, ledger_retry_delay_s=0.2,
             reconcile_every_s=0.3, web_workers=2, consumer_workers=3, consumer_initial_delay_s=0.01,
             consumer_max_delay_s=0.1, huey_log_level="WARNING") as running:
        yield running


def send(lab, to):
    with smtplib.SMTP("127.0.0.1", lab.smtp_port, timeout=5) as smtp:
        smtp.sendmail("lab@tasks-lab.test", [to], f"Message-ID: <{to}>\r\nSubject: t\r\n\r\nhi\r\n")


@pytest.mark.stack
def test_every_server_listens_on_loopback_only_reconciler_included(lab):
    assert "reconciler" in lab.processes
    listening = lab.listening_sockets()
    assert lab.web_port in listening and lab.smtp_port in listening
    assert set(listening.values()) == {"127.0.0.1"}


@pytest.mark.stack
def test_run_folder_and_its_sqlite_files_are_the_owners_alone(lab):
    before = lab.mail.emails_received()
    lab.http.post("/email/ledger/", {"to": "files@example.test"})
    lab.mail.wait_for_emails(before + 1, timeout=20)  # leave no work in flight for the next test
    assert stat.S_IMODE(lab.run_dir.stat().st_mode) == 0o700
    files = list(lab.run_dir.glob("*.sqlite3*"))
    assert {p.name for p in files} >= {"huey.sqlite3", "site.sqlite3"}
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path.name


@pytest.mark.stack
def test_smtp_faults_switch_while_the_server_runs(lab):
    before = lab.mail.emails_received()
    set_fault(lab.smtp_control, "refuse", 451)
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(lab, "refused@example.test")
    assert refused.value.smtp_code == 451
    set_fault(lab.smtp_control, "refuse", 554)
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(lab, "refused5@example.test")
    assert refused.value.smtp_code == 554
    set_fault(lab.smtp_control, "drop")
    with pytest.raises(smtplib.SMTPServerDisconnected):
        send(lab, "dropped@example.test")
    set_fault(lab.smtp_control, "ok")
    send(lab, "accepted@example.test")
    # only what was acknowledged is recorded: of this test's four messages, the accepted one, once
    ours = {"refused@example.test", "refused5@example.test", "dropped@example.test", "accepted@example.test"}
    recorded = [r[0] for r in lab.mail.deliveries()["rcpt_tos"].iloc[before:] if r[0] in ours]
    assert recorded == ["accepted@example.test"]


@pytest.mark.stack
def test_the_provider_can_stall_each_command_refuse_unknown_users_and_record_before_its_reply(lab):
    import json
    import socket
    import time
    import urllib.request

    def accepted(message_id):
        url = f"http://127.0.0.1:{lab.smtp_status_port}/messages?message_id={message_id}"
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())["accepted"]

    try:
        set_provider(lab.smtp_control, unknown_users=r"^nouser")
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            send(lab, "nouser-1@example.test")
        assert refused.value.recipients["nouser-1@example.test"][0] == 550
        set_fault(lab.smtp_control, "stall", stall_s=0.2)
        began = time.monotonic()
        send(lab, "stalled@example.test")
        assert time.monotonic() - began >= 4 * 0.2  # EHLO, MAIL, RCPT, end of DATA
        # Recorded first: a client that gives up during the delay has had its message taken all the same.
        set_fault(lab.smtp_control, "ok", delay_s=1.0)
        set_provider(lab.smtp_control, record_first=True)
        with pytest.raises((smtplib.SMTPServerDisconnected, socket.timeout, TimeoutError)), \
                smtplib.SMTP("127.0.0.1", lab.smtp_port, timeout=0.4) as smtp:
            smtp.sendmail("lab@tasks-lab.test", ["first@example.test"],
                          "Message-ID: <first@example.test>\r\nSubject: t\r\n\r\nhi\r\n")
        assert accepted("<first@example.test>")
        recorded = [r[0] for r in lab.mail.deliveries()["rcpt_tos"]]
        assert "first@example.test" in recorded and "nouser-1@example.test" not in recorded
    finally:
        set_provider(lab.smtp_control)
        set_fault(lab.smtp_control, "ok")


@pytest.mark.stack
def test_the_ledger_loses_nothing_when_the_consumer_is_killed_mid_run(lab):
    table, timeline = faults.run_episode(lab, faults.FaultPlan("consumer_kill", rate=15, duration_s=3.0,
                                                               fault_at_s=0.8, fault_for_s=0.5, settle_timeout_s=40))
    assert len(timeline) == 1 and lab.running
    assert table["settled"].all() and table["late_copies"].sum() == 0
    assert set(table["design"]) == set(faults.DESIGNS)  # Huey offers every design
    with_ledger = table.set_index("endpoint").loc["ledger"]
    assert with_ledger["requested"] > 20
    assert with_ledger["lost"] == 0 and with_ledger["duplicated"] == 0
    assert with_ledger["ledger_missed"] == 0 and with_ledger["ledger_disagreements"] == 0
    without = table.set_index("endpoint").loc["deferred"]
    # At most once: a kill takes the tasks its 3 workers held, never one waiting in the queue, and sends none twice.
    assert without["requested"] > 20
    assert without["lost"] <= 3 * len(timeline) and without["duplicated"] == 0


@pytest.mark.stack
def test_debug_is_off_in_lab_runs(lab):
    """With DEBUG on, Django would answer an unknown path with its HTML technical page, settings included."""
    response = lab.http.get("/no-such-page/")
    assert response.status == 404
    assert response.getheader("Content-Type") == "application/json"
    assert b"DEBUG" not in response.body and b"Traceback" not in response.body


# -- the accounting, on hand-built records (issue 14) ---------------------------------------------------------

def requests(*statuses):
    """Load-generator records: request i answered statuses[i] (0: the client saw the connection fail)."""
    return pd.DataFrame({"i": range(len(statuses)), "status": statuses,
                         "error": [None if status else "reset" for status in statuses]})


def copies(**by_request):
    """Copies the SMTP server accepted per request number: copies(r0=1, r1=2)."""
    return pd.Series({int(name[1:]): n for name, n in by_request.items()}, dtype=int)


def fault_table(settled=True, ledger_states=("delivered", "none"), ledger_received=None, met=True):
    """A run_faults table: a plain row that lost one of two, and a ledger row for requests (202, failed), whose
    jobs ended in `ledger_states` and whose SMTP copies are `ledger_received`."""
    received = ledger_received if ledger_received is not None else copies(r0=1)
    episode = {"backend": "huey_sqlite", "fault": "consumer_kill", "kind": "transient", "tag": "t1", "injections": 1,
               "consumer_workers": 4, "replays": 0, "met_every_load": met, "settled": settled, "settle_s": 1.0}
    plain = {"design": "plain", "endpoint": "deferred", **episode,
             **account(requests(202, 202), copies(r0=1), copies(r0=1))}
    ledger = {"design": "ledger", "endpoint": "ledger", **episode,
              **account(requests(202, 0), received, received, pd.Series(dict(enumerate(ledger_states)))),
              "ledger_delivered": list(ledger_states).count("delivered"), "ledger_uncertain_attempts": 0,
              "ledger_confirmed_by_provider": 0, "ledger_reenqueued": 0, "ledger_attempts": 1, "ledger_jobs": 1}
    return pd.DataFrame([plain, ledger])


def claims(table):
    timeline = pd.DataFrame([{"fault": "consumer_kill", "injected_at_s": 1.0, "recovered_at_s": 2.0,
                              "loads_running": True}])
    overload = json.loads((REPO_ROOT / "data/reference/full-run/05-faults.run.json").read_text())["figures"]
    return faults.verdict({**overload, **faults.key_figures(table, timeline)})  # the reference's overload figures


def test_a_fault_that_missed_a_design_fails_the_verdict():
    claim = "every fault met every design's load"
    assert claims(fault_table())[claim]
    assert not claims(fault_table(met=False))[claim]


def test_a_web_crash_reached_the_loads_only_if_requests_failed():
    plan = faults.FaultPlan("web_restart")
    timeline = pd.DataFrame([{"loads_running": True}])
    felt = faults.Episode(plan, "t1", {"deferred": requests(202, 202), "ledger": requests(0, 202)}, timeline, {}, {},
                          4)
    unfelt = replace(felt, records={"deferred": requests(202, 202), "ledger": requests(202, 202)})
    assert felt.met_every_load and not unfelt.met_every_load
    assert not replace(felt, timeline=pd.DataFrame([{"loads_running": False}])).met_every_load


def test_an_episode_that_did_not_settle_fails_the_verdict():
    claim = "every episode settled before its timeout"
    assert claims(fault_table(settled=True))[claim]
    assert not claims(fault_table(settled=False))[claim]


def test_one_loss_and_one_unacknowledged_delivery_do_not_cancel_out_in_the_ledger_check():
    # Request 0 got its 202 but its job failed, unsent; request 1 failed at the client, yet its job was delivered.
    # One delivered job for one 202: equal totals, and still an accepted email the ledger never delivered.
    table = fault_table(ledger_states=("failed", "delivered"), ledger_received=copies(r1=1))
    ledger = table.set_index("endpoint").loc["ledger"]
    assert ledger["ledger_delivered"] == ledger["requested"] == 1
    assert ledger["ledger_missed"] == 1 and ledger["ledger_disagreements"] == 0
    claim = "ledger: every accepted job delivered in the ledger, message by message"
    assert claims(fault_table())[claim]
    assert not claims(table)[claim]


def test_the_ledger_and_the_smtp_record_are_compared_per_message():
    # The ledger says request 0 failed, yet the SMTP server accepted it: the ledger's account is wrong.
    table = fault_table(ledger_states=("failed", "none"), ledger_received=copies(r0=1))
    assert table.set_index("endpoint").loc["ledger", "ledger_disagreements"] == 1
    assert not claims(table)["ledger: the ledger agrees with the SMTP record on every message"]


def test_every_replayed_attempt_is_kept_so_its_losses_count(monkeypatch):
    """An episode whose fault missed a load is played again; the first attempt's requests were answered 202 all the
    same, and what became of them is counted too."""
    plan = faults.FaultPlan("web_restart")
    missed = faults.Episode(plan, "t1", {"deferred": requests(202)}, pd.DataFrame([{"loads_running": False}]), {}, {},
                            4)
    met = replace(missed, tag="t2", records={"deferred": requests(0, 202)},
                  timeline=pd.DataFrame([{"loads_running": True}]))
    attempts = iter([missed, met])
    monkeypatch.setattr(faults, "_play_once", lambda lab, plan, designs: next(attempts))

    class Drained:
        def wait_until_drained(self):
            pass

    played = faults.play(Drained(), plan, ["plain"])
    assert [(e.tag, e.replays) for e in played] == [("t1", 0), ("t2", 1)]


def test_settling_after_a_long_kill_episode_may_take_as_long_as_its_backlog_drains():
    """`bench faults -p kills 100`: 14 min of load left Huey-SQLite a backlog it drained in 16 min, past settle's
    former 15 min limit (10 x the 90 s timeout), so the episode counted as not settled; the limit grows with the
    load."""
    from types import SimpleNamespace

    plan = faults.fault_plans(kills=100, faults=["consumer_kill"])[0]
    lab = SimpleNamespace(consumer_start_s=4.0)
    long_plan = replace(plan, duration_s=faults.load_s(lab, plan))
    assert long_plan.duration_s > 14 * 60
    assert faults.settle_limit_s(long_plan) >= 10 * plan.settle_timeout_s + 16 * 60
    short = faults.fault_plans(kills=3, faults=["consumer_kill"])[0]
    assert faults.settle_limit_s(short) < 10 * short.settle_timeout_s + 60
