"""The browser probe: Playwright for Python drives Debian's Chromium, headless, through the site's sign-up page
with real input, and reads what the page and the browser measured.

Each trial opens a fresh tab on /signup/, moves the mouse onto one button and presses it (trusted input: Event
Timing, hence INP, ignores `element.click()` and synthetic events), waits until the page says it is done (the
result on screen; for the deferred path, the email delivered), reads `window.labReport()`, gives web-vitals up
to 2 s to report the click's INP, then navigates the tab to /noop/: the page becomes hidden and web-vitals makes
its final report. The page keeps every report in sessionStorage, where the probe reads it; so a form post's
page, hidden by its own navigation, still hands its INP over (unless the next page came before the click's
Event Timing entry was delivered: then there is none). Per trial, in milliseconds:

- ttfb_ms: the navigation's TTFB as Core Web Vitals defines it, responseStart - startTime, of the page the
  trial ends on (form variant: the result page, reached through the POST and its redirect, which it includes;
  fetch and xhr variants: the sign-up page itself). ttfb_request_ms: responseStart - requestStart (the last
  request alone); redirect_ms; vitals_ttfb_ms: web-vitals' own TTFB, a cross-check.
- request_ms, request_ttfb_ms, server_ms: the POST made by fetch() or XHR (Resource Timing duration and
  responseStart - requestStart, and the server's own Server-Timing).
- feedback_ms: from the click to the server's answer on screen ("sent", or "queued" for the deferred path);
  delivered_ms: from the click until "sent" is on screen (the deferred page polls the task's status).
- inp_ms: INP as web-vitals reports it for the sign-up page (its defaults, reportAllChanges), with its
  attribution: input delay, processing, presentation delay.

The probe runs in its own process (`measure()` starts `python -m helpers.browser` with a JSON plan): never
in the notebook kernel, whose running asyncio loop Playwright's sync API refuses. That process is a child
subreaper, so every Chromium process, the double-forked ones too, stays its descendant; it closes the browser
however a trial ends, then kills and reaps whatever is left before it exits, and it dies with its parent.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pandas as pd
import psutil

from helpers import REPO_ROOT
from helpers.instruments import plan_process
from helpers.stack.processes import kill_all

CHROMIUM = Path(os.environ.get("LAB_CHROMIUM", "/usr/bin/chromium"))
# Playwright adds --headless and its own automation flags. Without the background-networking flags Chromium
# keeps trying to reach Google's hosts, which this machine's closed network refuses.
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update")
PROFILE_PREFIX = "tasks-lab-chromium-"
VARIANTS = ("form", "fetch", "xhr")  # form post + redirect, fetch(), synchronous XMLHttpRequest
PATHS = ("blocking", "deferred")
# Core Web Vitals thresholds (ms): "good" up to the first, "poor" above the second.
THRESHOLDS_MS = {"ttfb": (800, 1800), "fcp": (1800, 3000), "inp": (200, 500)}
# the web-vitals build labsite's pages load, injected into any other page the probe opens
WEB_VITALS = REPO_ROOT / "labsite" / "static" / "labsite" / "vendor" / "web-vitals" / "web-vitals.attribution.iife.js"
_PR_SET_CHILD_SUBREAPER = 36


@dataclass
class ProbePlan:
    base_url: str
    variants: list[str] = field(default_factory=lambda: list(VARIANTS))
    paths: list[str] = field(default_factory=lambda: list(PATHS))
    trials: int = 5  # timed trials per variant and path
    warmup: int = 1  # rounds run first and flagged warmup=True
    timeout_s: float = 30.0  # per trial: the deferred path waits for the consumer to deliver

    def schedule(self) -> list[tuple[int, bool, str, str]]:
        """(round, warm-up?, variant, path): every combination once per round, the order reversed every other
        round (A B B A), so that no combination always follows the same one."""
        combos = [(variant, path) for variant in self.variants for path in self.paths]
        plan = []
        for n in range(self.warmup + self.trials):
            for variant, path in combos if n % 2 == 0 else combos[::-1]:
                plan.append((n, n < self.warmup, variant, path))
        return plan


@contextlib.contextmanager
def chromium(executable: Path = CHROMIUM, headless: bool = True) -> Iterator:
    """A Playwright browser context on a fresh Chromium with its own empty profile folder; the browser is
    closed and the folder removed however the block ends."""
    from playwright.sync_api import sync_playwright  # imported here: the notebook kernel never needs it

    if not Path(executable).exists():
        raise FileNotFoundError(f"{executable} not found: `make system-deps` installs Debian's chromium")
    profile = tempfile.mkdtemp(prefix=PROFILE_PREFIX)
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile, executable_path=str(executable), headless=headless, args=list(CHROMIUM_ARGS),
                viewport={"width": 1000, "height": 800})
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def press(page, selector: str) -> None:
    """Move the mouse onto the element and press it: real pointer input, as a person's."""
    box = page.locator(selector).bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.up()


INP_REPORTED = ("JSON.parse(sessionStorage.getItem('lab:vitals') || '[]')"
                ".some((r) => r.name === 'INP' && r.page === 'signup')")
INP_WAIT_MS = 2000


def run_trial(context, plan: ProbePlan, variant: str, path: str, n: int) -> tuple[dict, list[dict]]:
    """One page, one click: returns the page's report and every web-vitals report of the tab."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    timeout_ms = plan.timeout_s * 1000
    page = context.new_page()
    try:
        page.set_default_timeout(timeout_ms)
        to = f"{variant}-{path}-{n}@example.test"
        page.goto(f"{plan.base_url}/signup/?{urlencode({'to': to})}", wait_until="load")
        page.wait_for_function("document.documentElement.dataset.labReady === '1'")
        press(page, f"#{path}-{variant}")
        if variant == "form":
            page.wait_for_url("**/signup/done/**")
        # A light poll: wait_for_selector backs off to 500 ms between looks, which would idle the probe.
        page.wait_for_function("document.body && document.body.dataset.labDone", polling=20)
        report = page.evaluate("labReport()")
        if variant != "form":
            # Event Timing delivers the click's entry only after its paint was presented, and web-vitals reports
            # it when the page is next idle: hiding the page before then would lose it. A form post cannot wait:
            # its own navigation hides the page.
            with contextlib.suppress(PlaywrightTimeoutError):
                page.wait_for_function(INP_REPORTED, polling=20, timeout=INP_WAIT_MS)
        page.goto(f"{plan.base_url}/noop/")  # hides the page: web-vitals reports INP one last time
        vitals = page.evaluate("JSON.parse(sessionStorage.getItem('lab:vitals') || '[]')")
    finally:
        page.close()
    return report, vitals


def _server_ms(entry: dict) -> float | None:
    return next((s["duration"] for s in entry.get("serverTiming", []) if s["name"] == "app"), None)


def _last(reports: list[dict], name: str, page: str) -> dict | None:
    found = [r for r in reports if r["name"] == name and r["page"] == page]
    return found[-1] if found else None


def trial_metrics(report: dict, vitals: list[dict], variant: str, path: str) -> dict:
    """The figures of one trial (milliseconds) from what the page reported."""
    nav, marks, click = report["navigation"], report["marks"], report.get("click") or {}
    row = {"state": report["done"], "ttfb_ms": nav["responseStart"] - nav["startTime"],
           "ttfb_request_ms": nav["responseStart"] - nav["requestStart"],
           "redirect_ms": nav["redirectEnd"] - nav["redirectStart"], "request_ms": None,
           "request_ttfb_ms": None, "server_ms": None, "feedback_ms": None, "delivered_ms": None}
    if variant == "form":
        # The click happened on the previous page: both ends as epoch milliseconds (performance.timeOrigin).
        clicked = click.get("epoch")
        for key, mark in (("feedback_ms", "lab:answer"), ("delivered_ms", "lab:delivered")):
            if clicked is not None and mark in marks:
                row[key] = report["timeOrigin"] + marks[mark] - clicked
    else:
        post = next((r for r in report["resources"] if urlsplit(r["name"]).path == f"/signup/{path}/"), None)
        if post is not None:
            row.update(request_ms=post["duration"], request_ttfb_ms=post["responseStart"] - post["requestStart"],
                       server_ms=_server_ms(post))
        for key, mark in (("feedback_ms", "lab:answer"), ("delivered_ms", "lab:delivered")):
            if "lab:click" in marks and mark in marks:
                row[key] = marks[mark] - marks["lab:click"]
    row["polls"] = sum(1 for r in report["resources"] if urlsplit(r["name"]).path.startswith("/tasks/"))
    ttfb = _last(vitals, "TTFB", report["page"])
    row["vitals_ttfb_ms"] = ttfb["value"] if ttfb else None
    inp = _last(vitals, "INP", "signup")
    row.update(inp_ms=inp["value"] if inp else None, inp_rating=inp["rating"] if inp else None,
               inp_input_delay_ms=inp.get("inputDelay") if inp else None,
               inp_processing_ms=inp.get("processingDuration") if inp else None,
               inp_presentation_ms=inp.get("presentationDelay") if inp else None)
    return row


def run_plan(plan: ProbePlan) -> list[dict]:
    from playwright.sync_api import Error as PlaywrightError

    rows = []
    with chromium() as context:
        version = context.browser.version if context.browser else None
        for n, warmup, variant, path in plan.schedule():
            row = {"variant": variant, "path": path, "label": f"{variant}/{path}", "trial": n, "warmup": warmup,
                   "browser": version, "state": None, "error": None}
            try:
                report, vitals = run_trial(context, plan, variant, path, n)
                row.update(trial_metrics(report, vitals, variant, path))
            except PlaywrightError as exc:
                row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
            rows.append(row)
    return rows


# Any page: web-vitals (injected before the page's own scripts) keeps its TTFB, FCP and INP reports in the tab's
# sessionStorage, which survives the page's own navigation (a form post) within the site.
PAGE_VITALS = """(() => {
  if (typeof webVitals === 'undefined' || window.__labPageVitals) return;
  window.__labPageVitals = true;
  const keep = (m) => {
    const reports = JSON.parse(sessionStorage.getItem('lab:page-vitals') || '[]');
    reports.push({name: m.name, value: m.value, rating: m.rating, path: location.pathname});
    sessionStorage.setItem('lab:page-vitals', JSON.stringify(reports));
  };
  webVitals.onTTFB(keep);
  webVitals.onFCP(keep);
  webVitals.onINP(keep, {reportAllChanges: true});
})();"""
PAGE_REPORTS = "JSON.parse(sessionStorage.getItem('lab:page-vitals') || '[]')"


@dataclass
class PagePlan:
    """One page of any site: load it, press one element with real pointer input, read TTFB, FCP and INP."""

    base_url: str
    path: str
    click: str | None = None  # a CSS selector; None: no interaction, so no INP
    trials: int = 3
    warmup: int = 1
    timeout_s: float = 15.0


def run_page_trial(context, plan: PagePlan) -> dict:
    """One fresh tab: load, press, give web-vitals up to INP_WAIT_MS to report the interaction; its figures (ms)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    page = context.new_page()
    try:
        page.set_default_timeout(plan.timeout_s * 1000)
        page.goto(f"{plan.base_url}{plan.path}", wait_until="load")
        with contextlib.suppress(PlaywrightTimeoutError):  # FCP needs a paint: a blank page never has one
            page.wait_for_function(f"{PAGE_REPORTS}.some((r) => r.name === 'FCP')", polling=20, timeout=INP_WAIT_MS)
        if plan.click:
            press(page, plan.click)
            with contextlib.suppress(PlaywrightTimeoutError):
                page.wait_for_function(f"{PAGE_REPORTS}.some((r) => r.name === 'INP')", polling=20,
                                       timeout=INP_WAIT_MS)
        reports = page.evaluate(PAGE_REPORTS)
    finally:
        page.close()
    first = {}
    for report in reports:  # the loaded page's own TTFB and FCP (a navigating click adds the next page's); INP last
        if report["name"] == "INP" or report["name"] not in first:
            first[report["name"]] = report["value"]
    return {"ttfb_ms": first.get("TTFB"), "fcp_ms": first.get("FCP"), "inp_ms": first.get("INP")}


def run_page_plan(plan: PagePlan) -> list[dict]:
    from playwright.sync_api import Error as PlaywrightError

    rows = []
    with chromium() as context:
        context.add_init_script(script=WEB_VITALS.read_text() + "\n" + PAGE_VITALS)  # one script: one scope
        for n in range(plan.warmup + plan.trials):
            row = {"trial": n, "warmup": n < plan.warmup, "ttfb_ms": None, "fcp_ms": None, "inp_ms": None,
                   "error": None}
            try:
                row.update(run_page_trial(context, plan))
            except PlaywrightError as exc:
                row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
            rows.append(row)
    return rows


def measure_page(base_url: str, path: str, click: str | None = None, trials: int = 3, warmup: int = 1,
                 timeout_s: float = 15.0) -> pd.DataFrame:
    """TTFB, FCP and INP of one page of any site (its own process, as `measure`), one row per timed trial."""
    plan = PagePlan(base_url, path, click, trials, warmup, timeout_s)
    budget = (warmup + trials) * (timeout_s + 2 * INP_WAIT_MS / 1000) + 60
    frame = plan_process.run_plan("helpers.instruments.browser", {"page": asdict(plan)}, "browser probe",
                                  timeout=budget)
    return frame[~frame["warmup"]].reset_index(drop=True)


def _reap_leftovers() -> None:
    """Kill every process this one still has below it, then collect the exit status of every child."""
    kill_all(psutil.Process().children(recursive=True))
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def measure(base_url: str, variants=VARIANTS, paths=PATHS, trials: int = 5, warmup: int = 1,
            timeout_s: float = 30.0, include_warmup: bool = False) -> pd.DataFrame:
    """Run the probe in its own process against the site at base_url; one row per trial."""
    plan = ProbePlan(base_url, list(variants), list(paths), trials, warmup, timeout_s)
    budget = len(plan.schedule()) * (timeout_s + 10) + 60
    frame = plan_process.run_plan("helpers.instruments.browser", asdict(plan), "browser probe", timeout=budget)
    return frame if include_warmup else frame[~frame["warmup"]].reset_index(drop=True)


def run_probe(plan: dict) -> list[dict]:
    """The probe process: a subreaper, so Chromium's helpers that outlive their parent are still ours to reap."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1)
    try:
        return run_page_plan(PagePlan(**plan["page"])) if "page" in plan else run_plan(ProbePlan(**plan))
    finally:
        _reap_leftovers()


if __name__ == "__main__":
    plan_process.serve_plan(run_probe)
