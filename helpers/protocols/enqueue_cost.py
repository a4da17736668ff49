"""Enqueue cost: what handing one task to the queue costs, measured where it happens rather than as a difference of
two noisy medians, each as a median with its 95 % confidence interval.

    in-process   the welcome email's enqueue (labsite.dispatch) called in a loop in a child process with the lab's
                 environment (helpers.instruments.queue_semantics.time_in_process), after a warm-up, the workers
                 stopped
    in request   the `enqueue` span of labsite's Server-Timing header (the time around dispatch.enqueue inside the
                 deferred view) over sequential deferred requests (helpers.instruments.client), with the lab's
                 workers running and then stopped

The interval of a median is the order-statistic one (binomial, distribution-free): the ranks j and n + 1 - j of the
sorted sample, j the largest rank that leaves at most 2.5 % on each side. It treats the calls as independent draws;
calls that share one process and one queue are not quite, so read it as the precision of this run, not of the
machine. A figure is precise when it is positive and its interval narrower than itself (precise())."""

from __future__ import annotations

import math

import numpy as np

from helpers.instruments import queue_semantics
from helpers.instruments.client import server_timing_spans, time_requests
from helpers.instruments.endpoints import request_spec
from helpers.protocols.consumers import has_workers
from helpers.protocols.messages import new_tag, recipient
from helpers.stack import Lab
from helpers.stack.processes import LOOPBACK

SPAN = "enqueue"  # labsite.middleware's span around each enqueue of the request
DEFERRED = "deferred"  # the view that enqueues the welcome email (helpers.instruments.endpoints)


def median_ci(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """The median of `values` and its distribution-free confidence interval (order statistics, binomial(n, 1/2)):
    (median, low, high); low and high are NaN when the sample is too small for that confidence (n < 6 at 95 %)."""
    from scipy.stats import binom

    ordered = np.sort(np.asarray(values, dtype=float))
    n = len(ordered)
    if n == 0:
        return math.nan, math.nan, math.nan
    median = float(np.median(ordered))
    tail = (1 - confidence) / 2
    below = int(binom.ppf(tail, n, 0.5))  # smallest count k with P(B <= k) >= tail ...
    if binom.cdf(below, n, 0.5) > tail:
        below -= 1  # ... made the largest with P(B <= k) <= tail: the interval's low end is the (k+1)-th value
    if below < 0:
        return median, math.nan, math.nan
    return median, float(ordered[below]), float(ordered[n - 1 - below])


def precise(median: float, low: float, high: float) -> bool:
    """The figure is positive and known better than itself: its interval is narrower than the figure."""
    return bool(median > 0 and math.isfinite(low) and math.isfinite(high) and high - low < median)


FIGURES = ("inprocess", "in_request", "in_request_stopped")


def checks(figures: dict[str, float]) -> dict[str, bool]:
    """Per figure of measure(): precise (positive, its interval narrower than itself)."""
    return {name: precise(figures[f"{name}_us"], figures[f"{name}_ci_low_us"], figures[f"{name}_ci_high_us"])
            for name in FIGURES}


def with_ci(name: str, values) -> dict[str, float]:
    median, low, high = median_ci(values)
    return {f"{name}_us": median, f"{name}_ci_low_us": low, f"{name}_ci_high_us": high}


def in_process(lab: Lab, calls: int, warmup: int) -> np.ndarray:
    """`calls` direct enqueues of the welcome email back to back after `warmup` untimed ones, in a child process with
    the lab's environment: µs each."""
    timed = queue_semantics.timed_in_child(lab, "in_process", count=calls, warmup=warmup, gaps_s=[0.0],
                                           kinds=["enqueue"])
    return timed["us"].to_numpy()


def in_request(lab: Lab, requests: int, warmup: int, state: str) -> np.ndarray:
    """`requests` sequential deferred requests (plus `warmup`), each to its own recipient: the `enqueue` span of each
    answer, µs. Raises if one was not accepted or carried no span."""
    spec = request_spec(DEFERRED, requests, form={"to": recipient(new_tag("enqueue"), state)}, warmup=warmup)
    timings = time_requests(LOOPBACK, lab.web_port, [spec])
    spans = timings["server_timing"].map(server_timing_spans)
    missing = timings[(timings["status"] != 202) | ~spans.map(lambda found: SPAN in found)]
    if len(missing):
        raise RuntimeError(f"{len(missing)} of {len(timings)} deferred requests without a 202 and an {SPAN} span: "
                           f"{missing[['status', 'server_timing', 'error']].head(3).to_dict('records')}")
    return spans.map(lambda found: found[SPAN] * 1e3).to_numpy()


def measure(lab: Lab, inprocess_calls: int = 2000, requests: int = 1000, warmup: int = 50,
            then_discard: bool = False) -> dict[str, float]:
    """The enqueue's cost on the running lab, µs, each a median with its 95 % interval: in the request with the
    workers running (in_request_us, in_request_ci_low_us, in_request_ci_high_us), in-process (inprocess_us, ...) and
    in the request with the workers stopped (in_request_stopped_us, ...; NaN for a backend without workers); calls
    and requests, the timed counts. Each deferred request enqueues a real welcome email: give the lab a fast SMTP
    server (smtp_delay_s=0).

    The running requests come first, on an empty queue: they meet only the work they set off themselves. Then, the
    queue drained and the workers stopped, the in-process loop and the stopped requests: the enqueue alone, as pyperf
    would time it on a quiet machine. Their tasks are drained after and the workers left running. With
    `then_discard`, for a lab about to be stopped, nothing is drained, neither the running requests' tasks still
    queued nor those of the stopped parts: they go with the lab, the workers stopped (one worker sending thousands of
    welcome emails took minutes for RQ's fork per job in notebook 09's full run)."""
    workers = has_workers(lab)
    stopped = [math.nan]
    if workers:
        lab.wait_until_drained()
    running = in_request(lab, requests, warmup, "running")
    if workers:
        if not then_discard:
            lab.wait_until_drained()
        lab.stop_consumer()
    try:
        inprocess = in_process(lab, inprocess_calls, warmup)
        if workers:
            stopped = in_request(lab, requests, warmup, "stopped")
    finally:
        if workers and not then_discard:
            lab.start_consumer()
    if workers and not then_discard:
        lab.wait_until_drained()
    return {"calls": float(inprocess_calls), "requests": float(requests), **with_ci("inprocess", inprocess),
            **with_ci("in_request", running), **with_ci("in_request_stopped", stopped)}
