"""The experiments, as functions the notebooks and the benchmarks share: one implementation each."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

import pandas as pd

from helpers import browser, latency, wrk
from helpers.client import RequestSpec, time_requests
from helpers.cpu import CpuMeter
from helpers.loadgen import LoadSpec, run_load
from helpers.stack import Lab

EMAIL_LABELS = ("blocking", "deferred")


@dataclass
class OverheadResult:
    timings: pd.DataFrame  # every request, warm-ups flagged
    summary: pd.DataFrame  # per endpoint, warm-ups left out
    emails_requested: int
    emails_received: int
    delivery_wait_s: float

    def p50(self, label: str) -> float:
        return float(self.summary.loc[label, "p50_ms"])


def overhead_specs(fast_requests: int, blocking_requests: int, warmup: int = 5) -> list[RequestSpec]:
    form = {"to": "user{i}@example.test"}
    return [
        RequestSpec("noop", "/noop/", fast_requests, warmup=warmup),
        RequestSpec("deferred", "/email/deferred/", fast_requests, "POST", form, warmup=warmup),
        RequestSpec("blocking", "/email/blocking/", blocking_requests, "POST", form, warmup=min(warmup, 2)),
    ]


def measure_overhead(lab: Lab, fast_requests: int, blocking_requests: int,
                     delivery_timeout_s: float = 300.0) -> OverheadResult:
    """Time the no-op, deferred and blocking endpoints interleaved, then wait for every email to arrive.

    Every email request that was answered 2xx (warm-ups included) must reach the SMTP server."""
    before = lab.emails_received()
    timings = time_requests("127.0.0.1", lab.web_port, overhead_specs(fast_requests, blocking_requests),
                            include_warmup=True)
    answered = timings["label"].isin(EMAIL_LABELS) & timings["status"].between(200, 299)
    requested = int(answered.sum())
    waited = lab.wait_for_emails(before + requested, timeout=delivery_timeout_s)
    summary = latency.summarize(timings[~timings["warmup"]])
    return OverheadResult(timings, summary, requested, lab.emails_received() - before, waited)


# -- under load (notebook 02, bench harness) ---------------------------------------------------------------

ENDPOINTS = {
    "noop": ("/noop/", "GET", {}),
    "deferred": ("/email/deferred/", "POST", {"to": "load{i}@example.test"}),
    "blocking": ("/email/blocking/", "POST", {"to": "load{i}@example.test"}),
    # The deferred email with the job ledger (labsite/ledger.py): notebook 05, `bench faults`.
    "ledger": ("/email/ledger/", "POST", {"to": "load{i}@example.test"}),
}


def load_spec(lab: Lab, endpoint: str, **kwargs) -> LoadSpec:
    path, method, form = ENDPOINTS[endpoint]
    return LoadSpec("127.0.0.1", lab.web_port, path=path, method=method, form=form, **kwargs)


def compare_with_wrk(lab: Lab, endpoint: str = "noop", connections: int = 16, duration_s: float = 8.0,
                     trials: int = 2) -> pd.DataFrame:
    """Closed loop at the same connection count, the lab's generator and wrk taking turns (A B, B A...).

    wrk times a request from its write to the end of the response; the lab's `service` time is the same span."""
    path, method, form = ENDPOINTS[endpoint]
    body = urlencode({k: v.format(i=0) for k, v in form.items()}) if form else None
    # wrk has no warm-up of its own: a discarded run first, so neither tool meets a cold server.
    wrk.run(lab.url(path), connections, 2, method=method, body=body)
    rows = []
    for trial in range(trials):
        tools = ("wrk", "lab") if trial % 2 == 0 else ("lab", "wrk")
        for tool in tools:
            if tool == "wrk":
                figures = wrk.run(lab.url(path), connections, duration_s, method=method, body=body)
                rows.append({"tool": "wrk", "trial": trial, "rps": figures["rps"], "p50_ms": figures["p50_ms"],
                             "p99_ms": figures["p99_ms"], "errors": figures["socket_errors"] + figures["non_2xx"]})
            else:
                result = run_load(load_spec(lab, endpoint, mode="closed", connections=connections,
                                            duration_s=duration_s, warmup_s=1.0))
                s = result.summary
                rows.append({"tool": "lab", "trial": trial, "rps": s["throughput"], "p50_ms": s["service_p50_ms"],
                             "p99_ms": s["service_p99_ms"], "errors": s["errors"] + s["non_2xx"]})
    return pd.DataFrame(rows)


@dataclass
class SweepResult:
    points: pd.DataFrame  # one row per (endpoint, rate or users, trial): summary figures and CPU
    records: pd.DataFrame  # every request, labelled with its point


def _point_row(result, meter: CpuMeter, **labels) -> dict:
    row = {**labels, **{k: v for k, v in result.summary.items() if k != "histograms"}}
    row.update(meter.usage())
    row["cpu_generator_pct"] = 100 * result.generator_cpu_s / meter.wall_s
    return row


def sweep(lab: Lab, endpoint: str, mode: str, levels, trials: int = 1, duration_s: float = 10.0,
          warmup_s: float = 2.0, max_connections: int = 512, progress=None) -> SweepResult:
    """Open loop over arrival rates, or closed loop over user counts, each point repeated `trials` times
    (trials outermost, so repeats are spread over time). The queue is drained before every point."""
    rows, records = [], []
    for trial in range(trials):
        for level in levels:
            lab.wait_until_drained()
            if mode == "open":
                spec = load_spec(lab, endpoint, mode="open", rate=float(level), arrival="poisson",
                                 connections=max_connections, duration_s=duration_s, warmup_s=warmup_s,
                                 seed=trial + 1)
            else:
                spec = load_spec(lab, endpoint, mode="closed", connections=int(level), duration_s=duration_s,
                                 warmup_s=warmup_s, seed=trial + 1)
            with CpuMeter(lab) as meter:
                result = run_load(spec)
            labels = {"endpoint": endpoint, "mode": mode, "level": level, "trial": trial}
            rows.append(_point_row(result, meter, **labels))
            records.append(result.records.assign(**labels))
            if progress is not None:
                progress.update(1)
    lab.wait_until_drained()
    return SweepResult(pd.DataFrame(rows), pd.concat(records, ignore_index=True))


def summarize_points(points: pd.DataFrame, columns=("throughput", "latency_p50_ms", "latency_p99_ms")) -> pd.DataFrame:
    """Median over trials per point, with a bootstrap CI over trials and the sample count."""
    out = []
    for (endpoint, level), group in points.groupby(["endpoint", "level"], sort=True):
        row = {"endpoint": endpoint, "level": level, "trials": len(group), "requests": int(group["requests"].sum()),
               "errors": int(group["errors"].sum() + group["non_2xx"].sum())}
        for column in columns:
            row[column] = float(group[column].median())
            row[f"{column}_ci_low"], row[f"{column}_ci_high"] = latency.bootstrap_ci(group[column])
        for cpu in [c for c in group.columns if c.startswith("cpu_")]:
            row[cpu] = float(group[cpu].median())
        out.append(row)
    return pd.DataFrame(out)


def service_time_s(lab: Lab, endpoint: str = "blocking", requests: int = 10) -> float:
    """The endpoint's service time S at no load: median of sequential requests (the M/D/c model's S)."""
    path, method, form = ENDPOINTS[endpoint]
    timings = time_requests("127.0.0.1", lab.web_port, [RequestSpec(endpoint, path, requests, method, form)])
    return float(timings["total_ms"].median()) / 1e3


# -- What the user sees: the sign-up page in a real browser (notebook 04, `bench browser`) --------------------

BROWSER_METRICS = ("ttfb_ms", "ttfb_request_ms", "redirect_ms", "request_ms", "server_ms", "feedback_ms",
                   "delivered_ms", "inp_ms", "inp_input_delay_ms", "inp_processing_ms", "inp_presentation_ms")


@dataclass
class BrowserResult:
    trials: pd.DataFrame  # one row per trial (variant, path), warm-ups flagged
    emails_requested: int
    emails_received: int
    delivery_wait_s: float

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

    def median(self, variant: str, path: str, metric: str) -> float:
        return float(self.medians().loc[(variant, path), metric])


def measure_browser(lab: Lab, trials: int, warmup: int = 1, variants=browser.VARIANTS,
                    timeout_s: float = 30.0, delivery_timeout_s: float = 120.0) -> BrowserResult:
    """Drive the sign-up page in headless Chromium, every variant and path interleaved, then wait until every
    email the site accepted (warm-ups included) has reached the SMTP server."""
    before = lab.emails_received()
    frame = browser.measure(lab.base_url, variants, browser.PATHS, trials, warmup, timeout_s, include_warmup=True)
    accepted = frame["error"].isna() & frame["state"].notna() & (frame["state"] != "refused")
    requested = int(accepted.sum())
    waited = lab.wait_for_emails(before + requested, timeout=delivery_timeout_s)
    return BrowserResult(frame, requested, lab.emails_received() - before, waited)
