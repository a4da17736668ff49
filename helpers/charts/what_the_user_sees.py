"""Charts of notebook 04, what the user sees: every browser trial over the Core Web Vitals bands."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from helpers.charts.common import COLORS
from helpers.instruments.browser import THRESHOLDS_MS


def vitals_strip(trials: pd.DataFrame, value: str, thresholds: tuple[float, float], ax=None,
                 title: str | None = None, ylabel: str | None = None, threshold_name: str = "Core Web Vitals"):
    """Every trial as a dot per variant/path (median as a bar, n = trials with a value), on a log millisecond
    axis, over the Core Web Vitals bands: good up to thresholds[0], poor above thresholds[1]."""
    ax = ax or plt.subplots(figsize=(8, 4))[1]
    good, poor = thresholds
    labels = list(dict.fromkeys(trials["label"]))
    rng = np.random.default_rng(0)
    values = trials[value].dropna()
    top = max(poor * 1.6, values.max() * 1.5 if len(values) else poor)
    bottom = min(good / 20, values.min() / 1.5 if len(values) else good / 20)
    ax.axhspan(bottom, good, color="#2ca02c", alpha=0.08)
    ax.axhspan(good, poor, color="#ff7f0e", alpha=0.08)
    ax.axhspan(poor, top, color="#d62728", alpha=0.08)
    lines = ((good, "#2ca02c", f"good up to {good:g} ms"), (poor, "#d62728", f"poor above {poor:g} ms"))
    for level, color, text in lines:
        ax.axhline(level, color=color, ls="--", lw=1, label=f"{threshold_name}: {text}")
    ticks = []
    for x, label in enumerate(labels):
        group = trials.loc[trials["label"] == label]
        points = group[value].dropna().to_numpy()
        color = COLORS.get(group["path"].iloc[0])
        ax.scatter(x + rng.uniform(-0.12, 0.12, len(points)), points, s=18, color=color, alpha=0.7, zorder=3)
        if len(points):
            median = float(np.median(points))
            ax.hlines(median, x - 0.3, x + 0.3, color=color, lw=2.5, zorder=4)
            ax.annotate(f"{median:.0f}", (x + 0.32, median), va="center", fontsize=8)
        ticks.append(f"{label}\n(n={len(points)})")
    ax.set_xticks(range(len(labels)), ticks, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylim(bottom, top)
    ax.set_xlim(-0.6, len(labels) - 0.2)
    ax.set_xlabel("how the page sends the form / path of the email")
    ax.set_ylabel(ylabel or f"{value} (milliseconds, log scale)")
    ax.set_title(title or value)
    ax.grid(True, axis="y", which="both", alpha=0.2)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
    return ax


def ttfb_chart(timed: pd.DataFrame):
    """Left, TTFB as Core Web Vitals define it (responseStart - startTime of the page's navigation); right,
    responseStart - requestStart, the navigation's last request alone. A form post's navigation is the POST (and
    its redirect); fetch() and XHR post without navigating, so theirs is the page load's: their ticks say so.
    Returns the figure."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5.8))
    navigations = timed.assign(label=[label if variant == "form" else f"{label}\npage load" for label, variant
                                      in zip(timed["label"], timed["variant"], strict=True)])
    vitals_strip(navigations, "ttfb_ms", THRESHOLDS_MS["ttfb"], ax=left,
                 title="Navigation TTFB = responseStart − startTime (Core Web Vitals)",
                 ylabel="TTFB (milliseconds, log scale)")
    vitals_strip(navigations, "ttfb_request_ms", THRESHOLDS_MS["ttfb"], ax=right,
                 title="responseStart − requestStart (the navigation's last request)",
                 ylabel="time to first byte (milliseconds, log scale)")
    for ax in (left, right):
        ax.set_xlabel("how the page sends the form / path (form: the POST; fetch, XHR: the page load)")
    return fig


def inp_chart(timed: pd.DataFrame):
    """INP per trial as web-vitals reports it, over its Core Web Vitals bands. Returns the figure."""
    fig, ax = plt.subplots(figsize=(10, 5.6))
    vitals_strip(timed, "inp_ms", THRESHOLDS_MS["inp"], ax=ax,
                 title="INP of the sign-up page, as web-vitals reports it", ylabel="INP (milliseconds, log scale)")
    return fig


def feedback_chart(timed: pd.DataFrame):
    """What the person waits for: the POST by fetch() or XHR (Resource Timing), the click until the answer is
    painted, the click until "sent" is painted. No Core Web Vital covers these; thresholds drawn for reference.
    Returns the figure."""
    fig, axes = plt.subplots(1, 3, figsize=(18, 5.8))
    vitals_strip(timed[timed["variant"] != "form"], "request_ms", THRESHOLDS_MS["ttfb"], ax=axes[0],
                 title="The POST by fetch() or XHR (Resource Timing)",
                 ylabel="request duration (milliseconds, log scale)", threshold_name="TTFB thresholds (reference)")
    vitals_strip(timed, "feedback_ms", THRESHOLDS_MS["inp"], ax=axes[1], title="Click until the answer is painted",
                 ylabel="feedback time (milliseconds, log scale)", threshold_name="INP thresholds (reference)")
    vitals_strip(timed, "delivered_ms", THRESHOLDS_MS["inp"], ax=axes[2], title="Click until 'sent' is painted",
                 ylabel="time until delivered (milliseconds, log scale)", threshold_name="INP thresholds (reference)")
    return fig
