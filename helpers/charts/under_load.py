"""Charts of notebook 02, under load: latency, throughput and errors against arrival rate, CPU per point, the
closed loop."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from helpers.charts.common import COLORS, error_bars


def latency_vs_rate(summary: pd.DataFrame, model: pd.DataFrame | None = None, capacity: float | None = None,
                    title: str | None = None):
    """Measured p50/p99 per endpoint against arrival rate (error bars: bootstrap CI over trials), with the
    queueing model's curves for the blocking endpoint; returns the figure."""
    fig, ax = plt.subplots(figsize=(9, 5))
    for endpoint, group in summary.groupby("endpoint"):
        color = COLORS.get(endpoint)
        for column, style in (("latency_p50_ms", "o-"), ("latency_p99_ms", "s--")):
            ax.errorbar(group["level"], group[column], yerr=error_bars(group, column), fmt=style, color=color,
                        capsize=3, label=f"{endpoint} {column.split('_')[1]} measured")
    if model is not None:
        for name, group in model[model["model"] == "M/D/c"].groupby("model"):
            finite = group[np.isfinite(group["p99_response_ms"])]
            ax.plot(finite["rate"], finite["p50_response_ms"], ":", color="black", label=f"{name} model p50")
            ax.plot(finite["rate"], finite["p99_response_ms"], "-.", color="black", label=f"{name} model p99")
    if capacity:
        ax.axvline(capacity, color="grey", lw=1, label=f"c/S = {capacity:.1f} requests/s (saturation)")
    ax.set_yscale("log")
    ax.set_xlabel("arrival rate λ (requests/s, open loop, Poisson)")
    ax.set_ylabel("latency from the moment a request was due (ms, log)")
    ax.set_title(title or "Latency against arrival rate")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def throughput_and_errors(summary: pd.DataFrame, capacity: float | None = None):
    """Left, throughput against arrival rate beside the line throughput = rate and c/S; right, the error rate.
    Returns the figure."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4))
    _throughput_vs_rate(summary, capacity, left)
    _errors_vs_rate(summary, right)
    return fig


def _throughput_vs_rate(summary: pd.DataFrame, capacity: float | None, ax):
    for endpoint, group in summary.groupby("endpoint"):
        ax.errorbar(group["level"], group["throughput"], yerr=error_bars(group, "throughput"), fmt="o-",
                    capsize=3, color=COLORS.get(endpoint), label=endpoint)
    top = summary["level"].max()
    ax.plot([0, top], [0, top], color="grey", lw=1, ls=":", label="throughput = λ")
    if capacity:
        ax.axhline(capacity, color="black", lw=1, ls="--", label=f"c/S = {capacity:.1f}/s")
    ax.set_xlabel("arrival rate λ (requests/s)")
    ax.set_ylabel("throughput (responses/s)")
    ax.set_title("Throughput against arrival rate")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def _errors_vs_rate(summary: pd.DataFrame, ax):
    for endpoint, group in summary.groupby("endpoint"):
        rate = 100 * group["errors"] / group["requests"].clip(lower=1)
        ax.plot(group["level"], rate, "o-", color=COLORS.get(endpoint), label=endpoint)
    ax.set_xlabel("arrival rate λ (requests/s)")
    ax.set_ylabel("failed or non-2xx requests (%)")
    ax.set_title("Error rate against arrival rate")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return ax


CPU_PARTS = {"cpu_web_pct": "web (gunicorn)", "cpu_consumer_pct": "Huey consumer", "cpu_smtp_pct": "SMTP server",
             "cpu_generator_pct": "load generator"}


def cpu_by_point(summary: pd.DataFrame):
    """Where the 2 cores went at each point (200% = both cores busy); returns the figure."""
    fig, ax = plt.subplots(figsize=(12, 4))
    labels = [f"{e}\n{lvl:g}" for e, lvl in zip(summary["endpoint"], summary["level"], strict=True)]
    bottom = np.zeros(len(summary))
    for column, name in CPU_PARTS.items():
        if column in summary:
            ax.bar(labels, summary[column], bottom=bottom, label=name)
            bottom += summary[column].to_numpy()
    ax.axhline(200, color="black", lw=1, ls="--", label="2 cores")
    ax.set_xlabel("endpoint and arrival rate (requests/s)")
    ax.set_ylabel("CPU (% of one core)")
    ax.set_title("CPU use per part of the lab")
    ax.tick_params(axis="x", labelsize=7)
    ax.legend(fontsize=8, ncols=5, loc="upper left")
    return fig


def closed_loop_chart(summary: pd.DataFrame, capacity: float | None = None):
    """Closed loop: throughput and median latency against the number of concurrent users; returns the figure."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 4))
    left, right = axes
    for endpoint, group in summary.groupby("endpoint"):
        left.plot(group["level"], group["throughput"], "o-", color=COLORS.get(endpoint), label=endpoint)
        right.plot(group["level"], group["latency_p50_ms"], "o-", color=COLORS.get(endpoint), label=endpoint)
    if capacity:
        left.axhline(capacity, color="black", lw=1, ls="--", label=f"c/S = {capacity:.1f}/s")
    left.set_xlabel("concurrent users (closed loop, no think time)")
    left.set_ylabel("throughput (responses/s)")
    left.set_title("Closed loop: throughput")
    right.set_xlabel("concurrent users (closed loop, no think time)")
    right.set_ylabel("median latency (ms)")
    right.set_title("Closed loop: the server's pace sets the load")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    return fig
