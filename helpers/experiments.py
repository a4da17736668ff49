"""The experiments, as functions the notebooks and the benchmarks share: one implementation each."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from helpers import latency
from helpers.client import RequestSpec, time_requests
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
