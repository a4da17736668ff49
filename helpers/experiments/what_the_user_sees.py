"""Notebook 04, what the user sees: the sign-up page in a real browser (`python -m helpers bench
what_the_user_sees`)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from helpers import runs
from helpers.instruments import browser
from helpers.protocols.messages import each_delivered_once, per_message
from helpers.runs.bench import benchmark
from helpers.stack import Lab

BROWSER_METRICS = ("ttfb_ms", "ttfb_request_ms", "redirect_ms", "request_ms", "server_ms", "feedback_ms",
                   "delivered_ms", "inp_ms", "inp_input_delay_ms", "inp_processing_ms", "inp_presentation_ms")


@dataclass
class BrowserResult:
    trials: pd.DataFrame  # one row per trial (variant, path), warm-ups flagged
    emails_requested: int
    emails_received: int
    delivery_wait_s: float
    emails_lost: int = 0  # accepted trials whose email never arrived, message by message
    emails_duplicated: int = 0  # copies beyond the first of any trial's email

    @property
    def timed(self) -> pd.DataFrame:
        """The timed trials (no warm-ups), ordered by variant and path as browser.VARIANTS and PATHS list them."""
        order = {(v, p): k for k, (v, p) in enumerate((v, p) for v in browser.VARIANTS for p in browser.PATHS)}
        timed = self.trials[~self.trials["warmup"]]
        rank = [order.get(key, len(order)) for key in zip(timed["variant"], timed["path"], strict=True)]
        return timed.assign(_rank=rank).sort_values(["_rank", "trial"], kind="stable").drop(columns="_rank") \
            .reset_index(drop=True)

    @property
    def failed(self) -> pd.DataFrame:
        """Trials that did not end with the email delivered on screen (warm-ups included)."""
        return self.trials[self.trials["error"].notna() | (self.trials["state"] != "delivered")]

    def medians(self) -> pd.DataFrame:
        """The median of every metric per variant and path, warm-ups left out, with the trial count n and the
        count of trials for which web-vitals reported an INP (none when no paint followed the click)."""
        groups = self.timed.groupby(["variant", "path"], sort=False)
        return groups[list(BROWSER_METRICS)].median().assign(n=groups.size(), inp_n=groups["inp_ms"].count())


def measure_browser(lab: Lab, trials: int, warmup: int = 1, variants=browser.VARIANTS,
                    timeout_s: float = 30.0, delivery_timeout_s: float = 120.0) -> BrowserResult:
    """Drive the sign-up page in headless Chromium, every variant and path interleaved, then wait until every
    email the site accepted (warm-ups included) has reached the SMTP server."""
    before = lab.mail.emails_received()
    frame = browser.measure(lab.http.base_url, variants, browser.PATHS, trials, warmup, timeout_s, include_warmup=True)
    accepted = frame["error"].isna() & frame["state"].notna() & (frame["state"] != "refused")
    requested = int(accepted.sum())
    waited = lab.mail.wait_for_emails(before + requested, timeout=delivery_timeout_s)
    # Each trial mails its own recipient, `<variant>-<path>-<trial>@example.test` (helpers.instruments.browser).
    counts = [per_message(frame.loc[accepted & (frame["variant"] == variant) & (frame["path"] == path), "trial"],
                          lab.mail.copies_by_number(f"{variant}-{path}-"))
              for variant, path in frame[["variant", "path"]].drop_duplicates().itertuples(index=False)]
    return BrowserResult(frame, requested, lab.mail.emails_received() - before, waited,
                         sum(c["lost"] for c in counts), sum(c["duplicated"] for c in counts))


def key_figures(result: BrowserResult) -> dict:
    """The figures notebook 04 records and `bench what_the_user_sees` prints, medians per variant and path: navigation
    TTFB after the form post and its redirect (and responseStart - requestStart, which leaves the POST out), the page's
    own TTFB with fetch(), the time from the click until fetch()'s answer and then "sent" are on screen, and INP as
    web-vitals reports it for each variant."""
    medians = result.medians()

    def median(variant: str, path: str, metric: str) -> float | None:
        """None where no trial had a value, or the variant was not run."""
        return runs.rounded(medians[metric].get((variant, path)))

    return {
        "ttfb_blocking_ms": median("form", "blocking", "ttfb_ms"),
        "ttfb_deferred_ms": median("form", "deferred", "ttfb_ms"),
        "ttfb_request_blocking_ms": median("form", "blocking", "ttfb_request_ms"),
        "ttfb_fetch_blocking_ms": median("fetch", "blocking", "ttfb_ms"),
        "ttfb_fetch_deferred_ms": median("fetch", "deferred", "ttfb_ms"),
        "feedback_blocking_ms": median("fetch", "blocking", "feedback_ms"),
        "feedback_deferred_ms": median("fetch", "deferred", "feedback_ms"),
        "inp_blocking_ms": median("fetch", "blocking", "inp_ms"),
        "inp_deferred_ms": median("fetch", "deferred", "inp_ms"),
        "delivered_blocking_ms": median("fetch", "blocking", "delivered_ms"),
        "delivered_deferred_ms": median("fetch", "deferred", "delivered_ms"),
        "inp_form_blocking_ms": median("form", "blocking", "inp_ms"),
        "inp_form_deferred_ms": median("form", "deferred", "inp_ms"),
        "inp_xhr_blocking_ms": median("xhr", "blocking", "inp_ms"),
        "inp_xhr_deferred_ms": median("xhr", "deferred", "inp_ms"),
        "medians": {f"{variant}/{path}": {metric.removesuffix("_ms"): median(variant, path, metric)
                                          for metric in BROWSER_METRICS}
                    for variant, path in medians.index},
        "trials_per_variant": int(medians["n"].min()),
        "inp_reported": {f"{variant}/{path}": int(count) for (variant, path), count in medians["inp_n"].items()},
        "failed_trials": len(result.failed),
        "emails_requested": result.emails_requested,
        "emails_received": result.emails_received,
        "emails_lost": result.emails_lost,
        "emails_duplicated": result.emails_duplicated,
        "browser": str(result.trials["browser"].iloc[0]),
    }


def vitals_rating(value_ms: float | None, metric: str) -> str:
    """How Core Web Vitals rate a value of `metric` ("ttfb" or "inp"): good, needs improvement or poor."""
    if value_ms is None:
        return "not reported"
    good, poor = browser.THRESHOLDS_MS[metric]
    return "good" if value_ms <= good else "poor" if value_ms > poor else "needs improvement"


@benchmark("what_the_user_sees", aliases=("browser",))
def browser_bench(run_dir, trials: int = 15, warmup: int = 2, smtp_delay_s: float = 0.3) -> dict:
    """What a person sees in a real browser (headless Chromium), every variant and path interleaved. Returns
    key_figures() and nothing else: the same names as notebook 04 (the parameters are in run.json)."""
    with Lab(run_dir=run_dir, smtp_delay_s=smtp_delay_s, web_workers=4, consumer_workers=2) as lab:
        result = measure_browser(lab, trials, warmup)
    runs.save_table(run_dir, "browser-trials", result.trials)
    return key_figures(result)


CLAIMS = {
    "all_sent": "every trial showed 'sent' and every email arrived",
    "form_ttfb_waits": "form post: the SMTP wait is inside the blocking TTFB",
    "form_ttfb_cut": "form post: deferring cut TTFB by at least half the SMTP delay",
    "form_ttfb_good": "form post: deferred TTFB is good",
    "form_request_start": "form post: responseStart - requestStart leaves the POST out",
    "fetch_ttfb_same": "fetch: deferring did not move TTFB",
    "fetch_feedback_sooner": "fetch: deferring brought the answer on screen sooner by at least half the SMTP delay",
    "fetch_inp_same": "fetch: deferring did not move INP",
    "form_inp_out": "form post: the server's wait stays out of INP (blocking INP under half the SMTP delay)",
    "xhr_inp_waits": "synchronous request: the server's wait is inside the blocking INP",
    "xhr_inp_good": "synchronous request: deferred INP is good",
    "xhr_inp_cut": "synchronous request: deferring moved INP by at least half the SMTP delay",
    "delivered_later": "fetch: the deferred email is on screen as sent no sooner than the blocking one",
}


def verdict(figures: dict, quick: bool = False) -> dict[str, bool | None]:
    """Notebook 04's claims, from key_figures(), the SMTP delay it ran with (smtp_delay_ms) and the Core Web Vitals
    thresholds (browser.THRESHOLDS_MS)."""
    f, smtp_ms = figures, figures["smtp_delay_ms"]
    half_ms = smtp_ms / 2
    good = {metric: browser.THRESHOLDS_MS[metric][0] for metric in ("ttfb", "inp")}
    return runs.claims(CLAIMS, {
        "all_sent": f["failed_trials"] == 0 and each_delivered_once(f, "emails_lost", "emails_duplicated",
                                                                    "emails_received", "emails_requested"),
        "form_ttfb_waits": f["ttfb_blocking_ms"] >= smtp_ms,
        "form_ttfb_cut": f["ttfb_deferred_ms"] <= f["ttfb_blocking_ms"] - half_ms,
        "form_ttfb_good": f["ttfb_deferred_ms"] <= good["ttfb"],
        "form_request_start": f["ttfb_request_blocking_ms"] < half_ms,
        "fetch_ttfb_same": abs(f["ttfb_fetch_deferred_ms"] - f["ttfb_fetch_blocking_ms"]) < half_ms,
        "fetch_feedback_sooner": f["feedback_deferred_ms"] <= f["feedback_blocking_ms"] - half_ms,
        "fetch_inp_same": abs(f["inp_deferred_ms"] - f["inp_blocking_ms"]) < half_ms,
        "form_inp_out": f["inp_form_blocking_ms"] < half_ms,
        "xhr_inp_waits": f["inp_xhr_blocking_ms"] >= smtp_ms,
        "xhr_inp_good": f["inp_xhr_deferred_ms"] <= good["inp"],
        "xhr_inp_cut": f["inp_xhr_deferred_ms"] <= f["inp_xhr_blocking_ms"] - half_ms,
        "delivered_later": f["delivered_deferred_ms"] >= f["delivered_blocking_ms"],
    }, quick)
