"""Notebook 10's instruments on real sockets: a site check that says in one line why it will not measure a closed port,
a server that does not speak HTTP, a redirect loop or a 5xx (and refuses a remote host); the Server-Timing recipe on
the real labsite and around real outgoing HTTP; the rate ladder; and the verdict, whose claims fail on figures moved
past their thresholds."""

import json
import socket
import threading
import time
import urllib.request
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from helpers.experiments import your_own_site
from helpers.instruments import site_check
from helpers.instruments.client import server_timing_spans
from helpers.protocols import open_loop
from helpers.stack import Lab


class Handler(BaseHTTPRequestHandler):
    """/ok/ 200 after `delay_s`; /loop/ redirects to itself; /a/ -> /b/ -> /a/; /moved redirects to /ok/; /fail/ 500."""

    delay_s = 0.0

    def do_GET(self):
        redirects = {"/loop/": "/loop/", "/a/": "/b/", "/b/": "/a/", "/moved": "/ok/"}
        if self.path in redirects:
            self.answer(302, b"", location=redirects[self.path])
        elif self.path == "/fail/":
            self.answer(500, b"boom")
        elif self.path == "/ok/":
            time.sleep(self.delay_s)
            self.answer(200, b"ok")
        else:
            self.answer(404, b"no such page")

    def answer(self, status: int, body: bytes, location: str | None = None):
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@contextmanager
def http_server(delay_s: float = 0.0):
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("Delayed", (Handler,), {"delay_s": delay_s}))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def garbage_server():
    """A TCP server that answers every connection with a line that is not HTTP, then closes it."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"SSH-2.0-OpenSSH_9.2 not a web server\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        listener.close()
        thread.join(timeout=5)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def problem(base_url: str, path: str, method: str = "GET", **kwargs) -> site_check.SiteProblem:
    client = site_check.site_client(base_url, **kwargs)
    with pytest.raises(site_check.SiteProblem) as raised:
        site_check.check_endpoint(client, method, path, timeout_s=5)
    return raised.value


def test_each_site_problem_is_one_line_that_says_what_to_fix():
    refused = problem(f"http://127.0.0.1:{closed_port()}", "/")
    assert isinstance(refused, site_check.Unreachable) and "connection refused" in str(refused)
    with garbage_server() as url:
        assert isinstance(problem(url, "/"), site_check.NotHTTP)
    with http_server() as url:
        client = site_check.site_client(url)
        assert site_check.check_endpoint(client, "GET", "/ok/").status == 200
        loop = problem(url, "/loop/")
        assert isinstance(loop, site_check.RedirectLoop)
        assert str(loop) == "GET /loop/ redirects in a loop: /loop/ -> /loop/"
        assert str(problem(url, "/a/")).endswith("/a/ -> /b/ -> /a/")
        moved = problem(url, "/moved")
        assert isinstance(moved, site_check.Redirected) and "probe /ok/ instead" in str(moved)
        failed = problem(url, "/fail/")
        assert isinstance(failed, site_check.ErrorAnswer) and str(failed) == \
            "GET /fail/ answers 500 Internal Server Error: boom"
    for error in (refused, loop, failed):
        assert error._render_traceback_() == [f"{type(error).__name__}: {error}"]  # what a notebook shows
        assert "\n" not in str(error)


def test_a_host_that_is_not_this_machine_is_refused_before_anything_is_sent():
    with pytest.raises(site_check.RemoteHostRefused, match="allow_remote_host=True"):
        site_check.site_client("http://192.0.2.1:8000")  # TEST-NET-1: nothing is sent to it
    with pytest.raises(site_check.SiteProblem, match="http://host:port"):
        site_check.site_client("https://127.0.0.1:8443")
    assert site_check.site_client("http://localhost:8000").port == 8000


def test_a_setup_past_its_bounds_is_refused_with_every_reason():
    endpoints = [{"name": "noop", "path": "/"}, {"name": "x", "path": "/x/", "expect": "slow", "deferred_as": "y"}]
    with pytest.raises(your_own_site.SetupRefused) as refused:
        your_own_site.Setup("http://127.0.0.1:1", endpoints, "noop", max_rate=10_000, requests=1000)
    assert all(reason in str(refused.value) for reason in ("expect must be", "deferred_as 'y'", "requests a point",
                                                           "sequential requests"))


def test_the_ladder_climbs_to_the_first_runaway_then_refines_between():
    seen = []

    def point_at(rate, baseline_ms):
        seen.append((rate, baseline_ms))
        return {"rate": rate, "ran_away": rate > 30, "latency_p50_ms": 10.0}, None

    rows, _ = open_loop.ladder(point_at, [10, 20, 40, 80], refine_steps=2)
    assert [r["rate"] for r in rows] == [10, 20, 40, 28.3, 33.6]
    assert seen[0][1] is None and {b for _, b in seen[1:]} == {10.0}


def test_server_timing_spans_parse_every_span_with_a_duration():
    header = 'app;dur=301.5, mail;desc="1 send";dur=300.1, cache;desc=hit, http;dur="12"'
    assert server_timing_spans(header) == {"app": 301.5, "mail": 300.1, "http": 12.0}
    assert server_timing_spans(None) == {}


def test_the_recipe_adds_an_http_span_for_outgoing_calls_with_urllib():
    """The middleware around a view that calls a real HTTP server twice (50 ms each) with urllib."""
    from django.http import HttpResponse
    from django.test import RequestFactory

    from docs.recipe.server_timing.middleware import ServerTimingSpans

    with http_server(delay_s=0.05) as url:
        def view(request):
            for _ in range(2):
                urllib.request.urlopen(f"{url}/ok/", timeout=5).read()
            response = HttpResponse("done")
            response["Server-Timing"] = "app;dur=1"
            return response

        response = ServerTimingSpans(view)(RequestFactory().get("/"))
    spans = server_timing_spans(response["Server-Timing"])
    assert spans["app"] == 1 and 100 <= spans["http"] < 1000, response["Server-Timing"]
    assert 'desc="2 calls"' in response["Server-Timing"] and "mail" not in spans


def test_the_recipe_on_the_real_labsite_shows_the_blocking_send_in_a_mail_span(tmp_path):
    """labsite under gunicorn with the recipe switched on (LAB_EXTRA_MIDDLEWARE): the blocking email's mail span is
    close to the SMTP server's delay; the deferred email has none, only labsite's own enqueue span, which is no slow
    span to move out."""
    delay_s = 0.15
    with Lab(run_dir=tmp_path, smtp_delay_s=delay_s, web_workers=1, consumer_workers=1,
             site_env={"LAB_EXTRA_MIDDLEWARE": your_own_site.RECIPE}) as lab:
        blocking = lab.http.post("/email/blocking/", {"to": "span@example.test"})
        deferred = lab.http.post("/email/deferred/", {"to": "later@example.test"})
        lab.mail.wait_for_emails(2)
    spans = server_timing_spans(blocking.getheader("Server-Timing"))
    assert blocking.status == 200 and delay_s * 1e3 <= spans["mail"] <= delay_s * 1e3 + 100, spans
    assert spans["mail"] <= spans["app"] and 'desc="1 send"' in blocking.getheader("Server-Timing")
    deferred_spans = server_timing_spans(deferred.getheader("Server-Timing"))
    assert deferred.status == 202 and set(deferred_spans) == {"app", "enqueue"}, deferred_spans
    assert your_own_site.slowest_span(pd.DataFrame({"spans": [deferred_spans]})) == (None, 0.0)


# -- the verdict: every claim can fail -----------------------------------------------------------------------------

FIGURES = {  # a quick-mode run against labsite (2 sync workers, SMTP delay 100 ms)
    "web_workers": 2, "baseline": "noop", "blocks_ratio": 10.0, "blocks_min_ms": 20.0, "all_2xx": True,
    "endpoints": [{"name": "noop", "label": "GET /noop/", "expect": None, "deferred_as": None},
                  {"name": "blocking", "label": "POST /email/blocking/", "expect": "blocks", "deferred_as": "deferred"},
                  {"name": "deferred", "label": "POST /email/deferred/", "expect": "does not block",
                   "deferred_as": None}],
    "noop_s_ms": 3.1, "noop_span": None, "noop_span_ms": 0.0,
    "blocking_s_ms": 115.64, "blocking_span": "mail", "blocking_span_ms": 110.9, "blocking_ran_away": True,
    "blocking_runaway_rate": 34.6, "blocking_without_span_s_ms": 4.74,
    "deferred_s_ms": 3.47, "deferred_span": None, "deferred_span_ms": 0.0, "deferred_ran_away": False,
    "deferred_highest_held_rate": 40.0,
}
CLAIMS = ["every endpoint answered 2xx to every sequential request", "blocking blocks its requests",
          "deferred kept up at a rate where blocking ran away",
          "deferred's S within 20 ms of the model's: blocking's S without its mail span",
          "deferred does not block its requests"]


def test_the_verdict_on_a_quick_run_against_labsite_is_all_pass_and_what_the_notebook_committed():
    checks = your_own_site.verdict(FIGURES)
    assert checks == dict.fromkeys(CLAIMS, True)
    import nbformat

    from helpers import REPO_ROOT

    cell = nbformat.read(REPO_ROOT / "notebooks" / "10-your-own-site.ipynb", as_version=4).cells[-1]
    assert "".join(o.get("text", "") for o in cell.outputs) == "".join(f"{claim}: PASS\n" for claim in CLAIMS)


@pytest.mark.parametrize(("moved", "claim"), [
    ({"all_2xx": False}, 0),
    # no span, and S only 9x the no-op's: not far above it
    ({"blocking_span": None, "blocking_span_ms": 0.0, "blocking_s_ms": 27.9}, 1),
    ({"blocking_highest_held_rate": None, "deferred_highest_held_rate": 34.5}, 2),
    ({"blocking_ran_away": False, "blocking_runaway_rate": None}, 2),
    ({"deferred_s_ms": 24.8}, 3),
    ({"deferred_span": "db", "deferred_span_ms": 20.0}, 4),
    ({"deferred_s_ms": 31.0, "blocks_min_ms": 27.0}, 4),  # 10x the no-op's and 27.9 ms above it
])
def test_figures_moved_past_a_threshold_fail_that_claim(moved, claim):
    checks = your_own_site.verdict({**FIGURES, **moved})
    failed = [text for text, held in checks.items() if held is False]
    assert failed == [CLAIMS[claim]], (moved, failed)


def test_the_figures_are_json():
    assert json.loads(json.dumps(FIGURES)) == FIGURES
