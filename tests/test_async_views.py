"""The async email views (labsite/views/async_email.py) and the site under uvicorn (LabConfig.web_server): refusals
through Django's test client, then real deliveries, SMTP faults and concurrency on the real stack, and a clean stop.
Then notebook 08's helpers on hand-built records and the utilisation-law model."""

import json
import math
import os
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import psutil
import pytest
from asgiref.sync import iscoroutinefunction

from helpers.analysis import queueing
from helpers.experiments import does_async_fix_it as experiment
from helpers.stack import Lab
from helpers.stack.processes import port_is_bound
from helpers.stack.smtp_sink import set_fault
from labsite.views import async_email
from tests.test_views import BAD_ADDRESSES

ASYNC_PATHS = ["/email/async/", "/email/async/thread-sensitive/", "/email/async/thread-pool/"]


# -- through Django's test client: no servers --------------------------------------------------------------------------

def test_the_async_views_stay_coroutines_under_allow_and_csrf_exempt():
    for view in (async_email.email_async, async_email.email_thread_sensitive, async_email.email_thread_pool):
        assert iscoroutinefunction(view)
        assert view.csrf_exempt


@pytest.mark.parametrize("path", ASYNC_PATHS)
@pytest.mark.parametrize("form", BAD_ADDRESSES)
def test_bad_input_to_an_async_view_is_the_same_json_400(client, path, form):
    response = client.post(path, form)
    assert response.status_code == 400
    assert response.json()["error"] == client.post("/email/blocking/", form).json()["error"]


@pytest.mark.parametrize("path", ASYNC_PATHS)
def test_wrong_method_on_an_async_view_is_a_json_405(client, path):
    response = client.get(path)
    assert response.status_code == 405
    assert response.json() == {"error": "method GET not allowed", "allowed": ["POST"]}
    assert response["Allow"] == "POST"


# -- on the real stack: uvicorn, the SMTP server, the consumer --------------------------------------------------------

@pytest.fixture(scope="module")
def lab():
    with Lab(web_server="uvicorn", web_workers=1, smtp_delay_s=0.05, smtp_timeout_s=5.0, consumer_workers=2,
             consumer_initial_delay_s=0.01, consumer_max_delay_s=0.1, huey_log_level="WARNING") as running:
        yield running


@pytest.mark.stack
@pytest.mark.parametrize("path", ASYNC_PATHS)
def test_an_async_view_under_uvicorn_delivers_a_real_email(lab, path):
    before = lab.mail.emails_received()
    response = lab.http.post(path, {"to": "async@example.test"})
    assert response.status == 200
    result = json.loads(response.body)["result"]
    assert lab.mail.emails_received() == before + 1  # sent before the answer
    row = lab.mail.deliveries().set_index("message_id").loc[result["message_id"]]
    assert row["rcpt_tos"] == ["async@example.test"] and row["mail_from"] == "lab@tasks-lab.test"


@pytest.mark.stack
def test_sync_views_still_work_under_uvicorn(lab):
    before = lab.mail.emails_received()
    assert lab.http.get("/noop/").status == 200
    response = lab.http.post("/email/deferred/", {"to": "deferred-asgi@example.test"})
    assert response.status == 202
    assert lab.http.post("/email/blocking/", {"to": "blocking-asgi@example.test"}).status == 200
    lab.mail.wait_for_emails(before + 2, timeout=20)  # the task's email too: no work left in flight for the next test


@pytest.mark.stack
def test_bad_input_under_uvicorn_is_a_json_4xx_and_sends_nothing(lab):
    lab.wait_until_drained()
    received = lab.mail.emails_received()
    for path in ASYNC_PATHS:
        for form in ({"to": "nope"}, {"to": ""}, {}):
            response = lab.http.post(path, form)
            assert response.status == 400 and "error" in json.loads(response.body)
        assert lab.http.get(path).status == 405
    assert lab.mail.emails_received() == received


def exchange(port: int, head: str, body: bytes = b"") -> bytes:
    """Send a raw request (a server may close mid-body once it refused: that is no error here); its answer."""
    import contextlib
    import socket

    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(head.encode() + body)
        with contextlib.suppress(ConnectionResetError):  # the rest of a refused body arrived after the server closed
            while chunk := sock.recv(65536):
                answer += chunk
    return answer


def spooled_bodies(lab) -> list:
    """Django's ASGI handler spools a body past FILE_UPLOAD_MAX_MEMORY_SIZE into a temporary file of the run."""
    return list(lab.tmp_dir.rglob("*"))


@pytest.mark.stack
def test_uvicorn_refuses_oversize_headers_and_bodies_before_storing_them(lab):
    """labsite.asgi's limits: gunicorn's header limits (431), a declared Content-Length over the path's limit (413
    with no body sent at all: nothing was waited for), a chunked body cut at the limit (413), nothing sent or
    stored; a body under the limit still gets through."""
    head = "POST /email/deferred/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" \
           "Content-Type: application/x-www-form-urlencoded\r\n"
    before = lab.mail.emails_received()
    form = b"to=limits%40example.test"
    answer = exchange(lab.web_port, head + f"X-Padding: {'a' * 9000}\r\nContent-Length: {len(form)}\r\n\r\n", form)
    assert answer.startswith(b"HTTP/1.1 431 ") and b'"error"' in answer
    answer = exchange(lab.web_port, head + f"Content-Length: {30 * 2**20}\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 413 ") and b'"error"' in answer
    upload_head = head.replace("/email/deferred/", "/thumbnails/deferred/")
    assert exchange(lab.web_port, upload_head + f"Content-Length: {30 * 2**20}\r\n\r\n").startswith(b"HTTP/1.1 413 ")
    padded = form + b"&pad=" + b"x" * (3 * 2**20)  # over Django's 2.5 MiB form limit, in 64 KiB chunks
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(padded[i:i + 2**16]), padded[i:i + 2**16])
                      for i in range(0, len(padded), 2**16))
    answer = exchange(lab.web_port, head + "Transfer-Encoding: chunked\r\n\r\n", chunks + b"0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 413 ") and b'"error"' in answer
    assert spooled_bodies(lab) == []
    assert exchange(lab.web_port, head + f"Content-Length: {len(form)}\r\n\r\n", form).startswith(b"HTTP/1.1 202 ")
    lab.mail.wait_for_emails(before + 1, timeout=20)
    assert lab.mail.emails_received() == before + 1  # only the last request's email


@pytest.mark.stack
@pytest.mark.parametrize("fault", [{"mode": "refuse", "code": 451}, {"mode": "drop"}])
def test_an_smtp_failure_mid_request_is_the_json_500_and_nothing_is_recorded(lab, fault):
    """The documented answer (labsite/views/async_email.py): the SMTP error raises out of the view, Django's handler500
    answers the JSON 500, as for the blocking view."""
    lab.wait_until_drained()
    received = lab.mail.emails_received()
    set_fault(lab.smtp_control, **fault)
    try:
        answers = [lab.http.post(path, {"to": "refused@example.test"}) for path in [*ASYNC_PATHS, "/email/blocking/"]]
    finally:
        set_fault(lab.smtp_control, "ok")
    assert [a.status for a in answers] == [500] * 4
    assert {json.loads(a.body)["error"] for a in answers} == {"internal error"}
    assert lab.mail.emails_received() == received


def smtp_overlap(deliveries: pd.DataFrame) -> int:
    """The most messages the SMTP server held at once (each from its DATA to its 250)."""
    events = sorted([(t, 1) for t in deliveries["received_at"]] + [(t, -1) for t in deliveries["accepted_at"]],
                    key=lambda e: (e[0], e[1]))
    held = peak = 0
    for _, step in events:
        held += step
        peak = max(peak, held)
    return peak


@pytest.mark.stack
@pytest.mark.parametrize("path,bounded", [("/email/async/", False), ("/email/async/thread-sensitive/", False),
                                          ("/email/async/thread-pool/", True)])
def test_one_uvicorn_worker_sends_many_at_once_but_the_thread_pool_only_its_size(lab, path, bounded):
    """With one worker process and the provider slowed to 1 s: the aiosmtplib and thread-sensitive views hold every
    send at once (one thread per request, not one per process); thread_sensitive=False holds at most the loop's
    default pool. Counted at the SMTP server, not timed."""
    requests = queueing.executor_threads() + 4
    before = len(lab.mail.deliveries())
    set_fault(lab.smtp_control, "ok", delay_s=1.0)
    try:
        with ThreadPoolExecutor(requests) as pool:
            statuses = list(pool.map(lambda i: lab.http.post(path, {"to": f"many{i}@example.test"}).status,
                                     range(requests)))
    finally:
        set_fault(lab.smtp_control, "ok")
    assert statuses == [200] * requests
    overlap = smtp_overlap(lab.mail.deliveries().iloc[before:])
    if bounded:
        assert overlap == queueing.executor_threads()
    else:
        assert overlap > queueing.executor_threads()


@pytest.mark.stack
def test_the_lab_stops_uvicorn_cleanly_after_switching_servers():
    """gunicorn, then uvicorn with two workers on the same port, then stop: no process and no port left."""
    with Lab(web_workers=2, consumer_workers=1, smtp_delay_s=0.01) as lab:
        port = lab.web_port
        lab.restart_web(web_server="uvicorn")
        assert lab.web_port == port and lab.http.get("/noop/").status == 200
        web = lab.processes["web"]
        assert "uvicorn" in " ".join(web.argv) and len(web.descendants()) >= 2
        assert lab.http.post("/email/async/", {"to": "stop@example.test"}).status == 200
        family = [psutil.Process(pid) for pid in lab.pids()]
    assert not port_is_bound(port)
    assert not [p.pid for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


# -- notebook 08's helpers and the model ---------------------------------------------------------------------------

def test_bottleneck_is_the_lowest_bound_and_c_over_s_is_its_slot_case():
    rate, binding = queueing.bottleneck({"slots": (0.3, 4), "cores": (0.004, 2), "idle": (0.0, 1)})
    assert binding == "slots" and rate == pytest.approx(queueing.saturation_rate(0.3, 4))
    rate, binding = queueing.bottleneck({"slots": (0.3, math.inf), "cores": (0.004, 2)})
    assert binding == "cores" and rate == pytest.approx(500)


def test_executor_threads_is_thread_pool_executors_default():
    cpus = getattr(os, "process_cpu_count", os.cpu_count)() or 1
    assert queueing.executor_threads() == min(32, cpus + 4)


def test_the_deferred_p50_is_taken_where_it_held_and_a_deferred_view_that_saturated_first_is_named():
    """Up to the aiosmtplib view's saturation (here 300/s answered): a deferred point that ran away is left out of
    the p50 and named instead; a point above that rate counts for neither."""
    points = pd.DataFrame([
        {"variant": "async", "rate": 213.3, "goodput_rps": 215.7, "ran_away": False, "latency_p50_ms": 317.0},
        {"variant": "async", "rate": 426.7, "goodput_rps": 300.0, "ran_away": True, "latency_p50_ms": 1800.0},
        {"variant": "deferred_gunicorn", "rate": 213.3, "goodput_rps": 215.7, "ran_away": False, "latency_p50_ms": 2.4},
        {"variant": "deferred_gunicorn", "rate": 426.7, "goodput_rps": 419.3, "ran_away": True, "latency_p50_ms": 90.0},
        {"variant": "deferred_uvicorn", "rate": 179.4, "goodput_rps": 185.7, "ran_away": False, "latency_p50_ms": 16.2},
        {"variant": "deferred_uvicorn", "rate": 213.3, "goodput_rps": 208.5, "ran_away": True, "latency_p50_ms": 255.4},
    ])
    measured = experiment.Measured(experiment.Setup(), points, pd.DataFrame(), pd.DataFrame(), 2)
    assert measured.deferred_p50_ms() == 16.2
    assert measured.deferred_saturated_first() == ["deferred_uvicorn"]
