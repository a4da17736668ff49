"""The real stack on loopback: SMTP server, gunicorn, Huey consumer. No mocks."""

import json
import time

import psutil
import pytest

from helpers.instruments.client import RequestSpec, time_requests
from helpers.stack import Lab
from helpers.stack.processes import port_is_bound
from helpers.stack.smtp_sink import set_fault

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def lab():
    with Lab(smtp_delay_s=0.05, web_workers=2, consumer_workers=2, consumer_initial_delay_s=0.01,
             consumer_max_delay_s=0.1) as running:
        yield running


def wait_for_state(lab, task_id, state, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = json.loads(lab.http.get(f"/tasks/{task_id}/").body)
        if body.get("state") == state:
            return body
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} never reached {state}: last {body}")


def test_every_server_listens_on_loopback_only(lab):
    listening = lab.listening_sockets()
    assert lab.web_port in listening and lab.smtp_port in listening
    assert set(listening.values()) == {"127.0.0.1"}


def test_the_sites_processes_keep_their_temporary_files_in_the_run_folder(lab):
    """A SIGKILLed worker cannot remove its temporary files (multiprocessing's pymp-* folders): they stay in the run."""
    for name in ("web", "consumer"):
        process = psutil.Process(lab.processes[name].pid)
        assert process.environ()["TMPDIR"] == str(lab.tmp_dir) == str(lab.run_dir / "tmp")
    assert lab.tmp_dir.is_dir()


def test_deferred_email_reaches_the_smtp_server(lab):
    before = lab.mail.emails_received()
    response = lab.http.post("/email/deferred/", {"to": "deferred@example.test"})
    assert response.status == 202
    task_id = json.loads(response.body)["task_id"]
    status = wait_for_state(lab, task_id, "delivered")
    lab.mail.wait_for_emails(before + 1, timeout=20)
    delivered = lab.mail.deliveries()
    row = delivered[delivered["message_id"] == status["result"]["message_id"]]
    assert len(row) == 1
    assert row.iloc[0]["rcpt_tos"] == ["deferred@example.test"]


def test_blocking_email_has_arrived_when_the_response_does(lab):
    before = lab.mail.emails_received()
    response = lab.http.post("/email/blocking/", {"to": "blocking@example.test"})
    assert response.status == 200
    assert lab.mail.emails_received() == before + 1
    message_id = json.loads(response.body)["result"]["message_id"]
    assert message_id in set(lab.mail.deliveries()["message_id"])


def test_a_refused_message_is_among_the_arrivals_and_not_in_the_record(lab):
    """The arrivals record has every message whose data reached the server (a send under way), the record only what
    it accepted."""
    to = "refused@example.test"
    set_fault(lab.smtp_control, "refuse", code=451)
    try:
        lab.http.post("/email/blocking/", {"to": to})
    finally:
        set_fault(lab.smtp_control, "ok")
    assert [to] in list(lab.mail.arrivals()["rcpt_tos"])
    assert [to] not in list(lab.mail.deliveries()["rcpt_tos"])


def test_bad_input_on_the_real_server_is_a_400_and_queues_nothing(lab):
    depth, received = lab.queue_depth(), lab.mail.emails_received()
    for form in ({"to": "nope"}, {"to": ""}, {}):
        response = lab.http.post("/email/deferred/", form)
        assert response.status == 400
        assert "error" in json.loads(response.body)
    assert lab.http.get("/tasks/0000/").status == 400
    assert lab.queue_depth() == depth
    time.sleep(0.3)
    assert lab.mail.emails_received() == received


def test_timing_client_measures_every_request_from_its_own_process(lab):
    specs = [RequestSpec("noop", "/noop/", 20, warmup=2),
             RequestSpec("deferred", "/email/deferred/", 10, "POST", {"to": "t{i}@example.test"}, warmup=1)]
    before = lab.mail.emails_received()
    frame = time_requests("127.0.0.1", lab.web_port, specs, include_warmup=True)
    assert list(frame["label"].value_counts().sort_index()) == [11, 22]
    assert frame["error"].isna().all()
    assert set(frame.loc[frame["label"] == "noop", "status"]) == {200}
    assert set(frame.loc[frame["label"] == "deferred", "status"]) == {202}
    assert (frame["connect_ms"] <= frame["ttfb_ms"]).all()
    assert (frame["ttfb_ms"] <= frame["total_ms"]).all()
    assert (frame["server_ms"] < frame["total_ms"]).all()
    lab.mail.wait_for_emails(before + 11, timeout=30)


def test_stopping_leaves_no_process_and_no_bound_port():
    lab = Lab(smtp_delay_s=0, web_workers=2, consumer_workers=2, consumer_worker_type="process").start()
    pids, ports = lab.pids(), [lab.web_port, lab.smtp_port]
    assert len(pids) >= 1 + 2 + 1 + 2  # gunicorn master and workers, consumer and its processes, smtp
    lab.stop()
    assert [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"] == []
    assert not any(port_is_bound(port) for port in ports)


def test_keyboard_interrupt_inside_the_lab_still_stops_it():
    with pytest.raises(KeyboardInterrupt), Lab(smtp_delay_s=0, web_workers=1, consumer_workers=1) as lab:
        pids = lab.pids()
        raise KeyboardInterrupt
    assert not any(psutil.pid_exists(pid) for pid in pids)
    assert not lab.running


def test_a_server_that_cannot_start_is_reported_with_its_log(tmp_path):
    lab = Lab(run_dir=tmp_path, consumer_worker_type="no-such-type")
    with pytest.raises(RuntimeError, match="consumer exited"):
        lab.start()
    assert not lab.processes


