"""The lab's standard charts. Every axis is labelled with its unit; sample counts go in the legend."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

COLORS = {"noop": "#7f7f7f", "deferred": "#1f77b4", "blocking": "#d62728"}


def latency_cdf(timings: pd.DataFrame, value: str = "total_ms", ax=None, title: str | None = None):
    """Empirical CDF per endpoint on a log time axis: every request is visible, tails included."""
    ax = ax or plt.subplots(figsize=(7, 4))[1]
    for label, group in timings.groupby("label", sort=False):
        values = np.sort(group[value].dropna().to_numpy())
        ax.step(values, np.arange(1, len(values) + 1) / len(values), where="post",
                label=f"{label} (n={len(values)})", color=COLORS.get(label))
    ax.set_xscale("log")
    ax.set_xlabel("response time per request (ms, log scale)")
    ax.set_ylabel("fraction of requests at or below")
    ax.set_title(title or "Response time distribution")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return ax


def percentile_bars(summary: pd.DataFrame, percentiles=("p50_ms", "p95_ms"), ax=None, title: str | None = None):
    """p50 and p95 side by side per endpoint, on a log axis so 1 ms and 300 ms both read."""
    ax = ax or plt.subplots(figsize=(7, 4))[1]
    labels = list(summary.index)
    width = 0.8 / len(percentiles)
    x = np.arange(len(labels))
    for k, column in enumerate(percentiles):
        values = summary[column].to_numpy()
        bars = ax.bar(x + k * width - 0.4 + width / 2, values, width, label=column.replace("_ms", ""))
        ax.bar_label(bars, labels=[f"{v:.3g}" for v in values], fontsize=8)
    ax.set_xticks(x, [f"{label}\n(n={summary.loc[label, 'n']})" for label in labels])
    ax.set_yscale("log")
    ax.set_ylabel("response time (ms, log scale)")
    ax.set_xlabel("endpoint")
    ax.set_title(title or "Percentiles per endpoint")
    ax.legend()
    return ax


def _error_bars(summary: pd.DataFrame, column: str):
    low, high = summary[f"{column}_ci_low"], summary[f"{column}_ci_high"]
    if low.isna().all():
        return None
    return np.vstack([(summary[column] - low).clip(lower=0), (high - summary[column]).clip(lower=0)])


def latency_vs_rate(summary: pd.DataFrame, model: pd.DataFrame | None = None, capacity: float | None = None,
                    ax=None, title: str | None = None):
    """Measured p50/p99 per endpoint against arrival rate (error bars: bootstrap CI over trials), with the
    queueing model's curves for the blocking endpoint."""
    ax = ax or plt.subplots(figsize=(7, 4.5))[1]
    for endpoint, group in summary.groupby("endpoint"):
        color = COLORS.get(endpoint)
        for column, style in (("latency_p50_ms", "o-"), ("latency_p99_ms", "s--")):
            ax.errorbar(group["level"], group[column], yerr=_error_bars(group, column), fmt=style, color=color,
                        capsize=3, label=f"{endpoint} {column.split('_')[1]} measured")
    if model is not None:
        for name, group in model[model["model"] == "M/D/c"].groupby("model"):
            finite = group[np.isfinite(group["p99_response_ms"])]
            ax.plot(finite["rate"], finite["p50_response_ms"], ":", color="black", label=f"{name} model p50")
            ax.plot(finite["rate"], finite["p99_response_ms"], "-.", color="black", label=f"{name} model p99")
    if capacity:
        ax.axvline(capacity, color="grey", lw=1)
        ax.annotate(f"c/S = {capacity:.1f}/s", (capacity, ax.get_ylim()[0]), rotation=90, va="bottom",
                    ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_xlabel("arrival rate λ (requests/s, open loop, Poisson)")
    ax.set_ylabel("latency from the moment a request was due (ms, log)")
    ax.set_title(title or "Latency against arrival rate")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    return ax


def throughput_vs_rate(summary: pd.DataFrame, capacity: float | None = None, ax=None):
    ax = ax or plt.subplots(figsize=(6, 4))[1]
    for endpoint, group in summary.groupby("endpoint"):
        ax.errorbar(group["level"], group["throughput"], yerr=_error_bars(group, "throughput"), fmt="o-",
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


def errors_vs_rate(summary: pd.DataFrame, ax=None):
    ax = ax or plt.subplots(figsize=(6, 4))[1]
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


def cpu_by_point(summary: pd.DataFrame, ax=None):
    """Where the 2 cores went at each point (200% = both cores busy)."""
    ax = ax or plt.subplots(figsize=(10, 4))[1]
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
    return ax


def closed_loop_chart(summary: pd.DataFrame, capacity: float | None = None, axes=None):
    """Closed loop: throughput and median latency against the number of concurrent users."""
    if axes is None:
        axes = plt.subplots(1, 2, figsize=(12, 4))[1]
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
    return axes


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
        ax.axhline(level, color=color, ls="--", lw=1)
        ax.text(0.995, level, f"{threshold_name}: {text}", transform=ax.get_yaxis_transform(), ha="right",
                va="bottom", fontsize=8, color=color)
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
    return ax


def ratio_chart(table: pd.DataFrame, ax=None, title: str | None = None):
    """Each figure of a rerun as a ratio to the reference (log scale: 2x and 0.5x are equally far from 1)."""
    ax = ax or plt.subplots(figsize=(8, max(3, 0.3 * len(table))))[1]
    labels = [f"{n.split('-')[0]} {f}" for n, f in zip(table["notebook"], table["figure"], strict=True)]
    ax.barh(labels, table["ratio"], color=["#1f77b4" if 0.8 <= r <= 1.25 else "#ff7f0e" for r in table["ratio"]])
    ax.axvline(1.0, color="black", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("latest / reference (ratio, log scale; 1 = same as the reference)")
    ax.set_ylabel("notebook and figure")
    ax.set_title(title or "Latest run against the reference")
    ax.invert_yaxis()
    ax.grid(True, axis="x", which="both", alpha=0.3)
    return ax
