"""Faults on the real stack (SMTP server, gunicorn, Huey consumer, the ledger's reconciler), no mocks: the SMTP
server's switchable faults, a consumer SIGKILL under load that the ledger survives, loopback-only servers and
owner-only run files."""

import smtplib
import stat

import pytest

from helpers import faults
from helpers.smtp_sink import set_fault
from helpers.stack import Lab

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def lab():
    with Lab(ledger=True, smtp_delay_s=0.05, smtp_timeout_s=1.0, ledger_deadline_s=1.5, ledger_retry_delay_s=0.2,
             reconcile_every_s=0.3, web_workers=2, consumer_workers=3, consumer_initial_delay_s=0.01,
             consumer_max_delay_s=0.1, huey_log_level="WARNING") as running:
        yield running


def send(lab, to):
    with smtplib.SMTP("127.0.0.1", lab.smtp_port, timeout=5) as smtp:
        smtp.sendmail("lab@tasks-lab.test", [to], f"Message-ID: <{to}>\r\nSubject: t\r\n\r\nhi\r\n")


def test_every_server_listens_on_loopback_only_reconciler_included(lab):
    assert "reconciler" in lab.processes
    listening = lab.listening_sockets()
    assert lab.web_port in listening and lab.smtp_port in listening
    assert set(listening.values()) == {"127.0.0.1"}


def test_run_folder_and_its_sqlite_files_are_the_owners_alone(lab):
    before = lab.emails_received()
    lab.post("/email/ledger/", {"to": "files@example.test"})
    lab.wait_for_emails(before + 1, timeout=20)  # leave no work in flight for the next test
    assert stat.S_IMODE(lab.run_dir.stat().st_mode) == 0o700
    files = list(lab.run_dir.glob("*.sqlite3*"))
    assert {p.name for p in files} >= {"huey.sqlite3", "site.sqlite3"}
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path.name


def test_smtp_faults_switch_while_the_server_runs(lab):
    before = lab.emails_received()
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
    recorded = [r[0] for r in lab.deliveries()["rcpt_tos"].iloc[before:] if r[0] in ours]
    assert recorded == ["accepted@example.test"]


def test_the_ledger_loses_nothing_when_the_consumer_is_killed_mid_run(lab):
    table, timeline = faults.run_episode(lab, faults.FaultPlan("consumer_kill", rate=15, duration_s=3.0,
                                                               fault_at_s=0.8, fault_for_s=0.5, settle_timeout_s=40))
    assert len(timeline) == 1 and lab.running
    with_ledger = table.set_index("endpoint").loc["ledger"]
    assert with_ledger["requested"] > 20
    assert with_ledger["lost"] == 0 and with_ledger["duplicated"] == 0
    assert with_ledger["ledger_delivered"] == with_ledger["requested"]
    without = table.set_index("endpoint").loc["deferred"]
    assert without["delivered"] + without["lost"] == without["requested"]


def test_debug_is_off_in_lab_runs(lab):
    """With DEBUG on, Django would answer an unknown path with its HTML technical page, settings included."""
    response = lab.get("/no-such-page/")
    assert response.status == 404
    assert response.getheader("Content-Type") == "application/json"
    assert b"DEBUG" not in response.body and b"Traceback" not in response.body
