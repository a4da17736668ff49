"""The sign-up page in a real browser: Debian's Chromium, headless, driven by the lab's probe through Playwright,
against the real stack on loopback. Never skipped: `make test` installs chromium where it is missing."""

import os
import tempfile
import time

import psutil
import pytest

from helpers.experiments import what_the_user_sees
from helpers.experiments.what_the_user_sees import vitals_rating
from helpers.instruments import browser
from helpers.stack import Lab

pytestmark = pytest.mark.stack

SMTP_DELAY_S = 0.3
SMTP_DELAY_MS = SMTP_DELAY_S * 1000


def chromium_processes(since: float) -> list[psutil.Process]:
    """Live (non-zombie) processes of a probe's Chromium started after `since`: its profile folder, in this test
    process's temporary folder, is in their command line (the crash handler's too)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "create_time", "status"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if (proc.info["create_time"] >= since and proc.info["status"] != psutil.STATUS_ZOMBIE
                and os.path.join(tempfile.gettempdir(), browser.PROFILE_PREFIX) in cmdline):
            found.append(proc)
    return found


def no_chromium_left(since: float, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while chromium_processes(since) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not chromium_processes(since)


@pytest.fixture(scope="module")
def lab():
    with Lab(smtp_delay_s=SMTP_DELAY_S, web_workers=2, consumer_workers=2, consumer_initial_delay_s=0.01,
             consumer_max_delay_s=0.1) as running:
        yield running


@pytest.fixture(scope="module")
def probed(lab):
    """One trial of every variant and path, as the notebook runs them, and when it started."""
    started = time.time() - 1
    result = what_the_user_sees.measure_browser(lab, trials=1, warmup=0)
    return result, started


@pytest.mark.parametrize("metric,value,rating", [
    ("ttfb", 800, "good"), ("ttfb", 800.1, "needs improvement"), ("ttfb", 1800, "needs improvement"),
    ("ttfb", 1800.1, "poor"), ("inp", 200, "good"), ("inp", 500, "needs improvement"), ("inp", 501, "poor"),
    ("inp", None, "not reported"),
])
def test_core_web_vitals_ratings_at_their_thresholds(metric, value, rating):
    """Good up to the first threshold, poor above the second (web.dev's definitions), as notebook 04 reports."""
    assert vitals_rating(value, metric) == rating


def row(result, variant, path):
    rows = result.timed[(result.timed["variant"] == variant) & (result.timed["path"] == path)]
    assert len(rows) == 1
    return rows.iloc[0]


def test_every_variant_ends_with_the_email_delivered_on_screen_and_in_the_smtp_server(probed):
    result, _ = probed
    assert result.failed.empty, result.failed[["label", "state", "error"]].to_string()
    assert len(result.timed) == len(browser.VARIANTS) * len(browser.PATHS)
    assert result.emails_requested == len(result.timed)
    assert result.emails_received == result.emails_requested
    assert result.emails_lost == result.emails_duplicated == 0  # message by message


def test_the_probe_leaves_no_browser_process_behind(probed):
    _, started = probed
    assert no_chromium_left(started), [p.info["cmdline"][:3] for p in chromium_processes(started)]


def test_the_browser_is_the_debian_chromium(probed):
    result, _ = probed
    version = result.trials["browser"].iloc[0]
    assert version and int(version.split(".")[0]) >= 120


def test_form_post_blocking_holds_the_navigation_for_the_email_and_deferred_does_not(probed):
    result, _ = probed
    blocking, deferred = row(result, "form", "blocking"), row(result, "form", "deferred")
    # The POST and its redirect are inside the navigation's TTFB (responseStart - startTime) ...
    assert blocking["ttfb_ms"] >= SMTP_DELAY_MS
    assert blocking["redirect_ms"] >= SMTP_DELAY_MS
    assert deferred["ttfb_ms"] < blocking["ttfb_ms"] - SMTP_DELAY_MS / 2
    # ... but not in responseStart - requestStart, which times the redirected GET of the result page alone: it fits
    # in what the redirect leaves of the TTFB, however slow a busy machine makes that GET.
    assert blocking["ttfb_request_ms"] <= blocking["ttfb_ms"] - blocking["redirect_ms"] + 1
    # web-vitals' TTFB is the same measurement as the probe's.
    assert blocking["vitals_ttfb_ms"] == pytest.approx(blocking["ttfb_ms"], abs=1)


def test_fetch_shows_the_answer_after_the_server_answered(probed):
    result, _ = probed
    for path in browser.PATHS:
        trial = row(result, "fetch", path)
        assert trial["request_ms"] >= trial["server_ms"] > 0
        assert trial["feedback_ms"] >= trial["request_ms"]
        assert trial["delivered_ms"] >= trial["feedback_ms"]
    blocking, deferred = row(result, "fetch", "blocking"), row(result, "fetch", "deferred")
    assert blocking["server_ms"] >= SMTP_DELAY_MS
    assert deferred["feedback_ms"] < blocking["feedback_ms"] - SMTP_DELAY_MS / 2
    assert deferred["polls"] >= 1 and blocking["polls"] == 0


def test_every_trial_whose_page_painted_after_the_click_has_an_inp_from_web_vitals(probed):
    """A deferred form post's next page may replace the old one before the click's Event Timing entry, which
    comes after the next paint, was delivered: web-vitals then has no INP to report for that page."""
    result, _ = probed
    painted = result.timed[result.timed["label"] != "form/deferred"]
    assert painted["inp_ms"].notna().all()
    assert (painted["inp_ms"] >= 0).all()  # Event Timing rounds durations to 8 ms: a fast one reads 0


def test_a_synchronous_request_puts_the_server_wait_into_inp(probed):
    result, _ = probed
    blocking = row(result, "xhr", "blocking")
    assert blocking["inp_ms"] >= SMTP_DELAY_MS
    assert blocking["inp_processing_ms"] >= SMTP_DELAY_MS  # the click handler itself waited
    assert row(result, "xhr", "deferred")["inp_ms"] < SMTP_DELAY_MS / 2


@pytest.mark.parametrize("variant", ["fetch", "form"])
def test_an_asynchronous_wait_stays_out_of_inp(probed, variant):
    """fetch() returns at once, and the old page keeps painting while a form post navigates."""
    result, _ = probed
    assert row(result, variant, "blocking")["inp_ms"] < SMTP_DELAY_MS / 2


def test_the_browser_is_closed_even_when_the_block_fails(lab):
    started = time.time() - 1
    with pytest.raises(RuntimeError, match="on purpose"), browser.chromium() as context:
        page = context.new_page()
        page.goto(lab.http.url("/signup/"))
        assert chromium_processes(started), "the probe's Chromium should be running here"
        raise RuntimeError("on purpose")
    assert no_chromium_left(started)


def test_a_post_from_the_page_without_its_token_is_refused_in_the_browser(lab):
    """The real CSRF check, seen from a real page: the same POST the fetch button makes, minus the token."""
    before = lab.mail.emails_received()
    with browser.chromium() as context:
        page = context.new_page()
        page.goto(lab.http.url("/signup/"))
        status = page.evaluate("""async () => {
            const body = new URLSearchParams({to: 'eve@example.test'});
            const response = await fetch('/signup/blocking/', {method: 'POST', body,
                headers: {'Accept': 'application/json'}});
            return response.status;
        }""")
    assert status == 403
    assert lab.mail.emails_received() == before


def test_a_probe_against_a_site_that_is_down_reports_errors_and_leaves_no_browser():
    from helpers.stack.processes import free_port

    started = time.time() - 1
    frame = browser.measure(f"http://127.0.0.1:{free_port()}", variants=["fetch"], paths=["deferred"], trials=1,
                            warmup=0, timeout_s=5)
    assert len(frame) == 1
    assert "ERR_CONNECTION_REFUSED" in frame["error"].iloc[0]
    assert frame["state"].isna().all()
    assert no_chromium_left(started)
