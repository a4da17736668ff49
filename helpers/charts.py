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
