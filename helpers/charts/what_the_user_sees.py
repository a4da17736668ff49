"""Charts of notebook 04, what the user sees: every browser trial over the Core Web Vitals bands."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from helpers.charts.common import COLORS


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
