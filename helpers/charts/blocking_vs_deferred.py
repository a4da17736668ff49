"""Charts of notebook 01, blocking vs deferred: every request's response time, and p50/p95 per endpoint."""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt

from helpers.charts.common import latency_cdf, percentile_bars

if TYPE_CHECKING:
    from helpers.experiments.blocking_vs_deferred import OverheadResult


def overhead_chart(result: OverheadResult):
    """Left, the distribution of every timed request (warm-ups left out) on a log axis, so the fast requests (no-op,
    deferred) and the blocking ones (at least the SMTP delay) read on one chart; right, p50 and p95."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5))
    latency_cdf(result.timings[~result.timings["warmup"]], ax=left, title="Total response time per request")
    percentile_bars(result.summary, ax=right, title="p50 and p95 per endpoint")
    return fig
