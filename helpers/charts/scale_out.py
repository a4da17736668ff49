"""Charts of notebook 06 (queue backends side by side): every axis labelled with its unit, sample counts in legends.
Each function returns its figure, for helpers.charts.common.show."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import NullFormatter

from helpers.charts import common as charts
from helpers.charts.common import backend_label, color


def view_latency(summary: pd.DataFrame, ax=None):
    """p50 and p99 of the no-op and deferred views per backend (helpers.experiments.scale_out.view_summary)."""
    flat = summary.copy()
    flat.index = [f"{backend_label(b)}\n{e}" for b, e in flat.index]
    flat["n"] = flat["n"].astype(int)
    ax = ax or plt.subplots(figsize=(8, 4.5))[1]
    ax = charts.percentile_bars(flat, percentiles=("p50_ms", "p99_ms"), ax=ax,
                                title="The view's response time: no-op and deferred (one enqueue)")
    return ax.figure


def pickups(frame: pd.DataFrame, ax=None):
    """Every task's pickup delay (enqueue -> start) per setting, one row each (log scale), with its median: rows,
    so that a dozen settings' names stay readable."""
    settings = list(dict.fromkeys(frame["setting"]))
    ax = ax or plt.subplots(figsize=(8, 1.6 + 0.42 * len(settings)))[1]
    rng = np.random.default_rng(0)
    for k, setting in enumerate(settings):
        rows = frame[frame["setting"] == setting]
        values = rows["pickup_ms"].to_numpy()
        ax.scatter(values, k + rng.uniform(-0.15, 0.15, len(values)), alpha=0.7, color=color(rows["backend"].iloc[0]))
        ax.vlines(np.median(values), k - 0.3, k + 0.3, color="black")
    counts = frame.groupby("setting", sort=False)["pickup_ms"].size()
    ax.set_yticks(range(len(settings)), [f"{s} (n={counts[s]})" for s in settings], fontsize=8)
    ax.invert_yaxis()
    ax.set_ylabel("backend, wait")
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())  # 2x10^0 ... 9x10^1 crowd each other
    ax.set_xlabel("pickup delay: enqueue to start (ms, log scale)")
    ax.set_title("Pickup after an idle period (bar: median)")
    ax.grid(True, which="both", axis="x", alpha=0.3)
    return ax.figure


def drain_vs_processes(drains: pd.DataFrame, ax=None):
    """Tasks per second a full queue empties at, against the number of consumer processes."""
    from helpers.experiments.scale_out import drain_medians

    ax = ax or plt.subplots(figsize=(7, 4))[1]
    medians = drain_medians(drains).reset_index()
    for backend, group in medians.groupby("backend", sort=False):
        group = group.sort_values("processes")
        runs = drains[drains["backend"] == backend]
        ax.scatter(runs["processes"], runs["tasks_per_s"], color=color(backend), alpha=0.35, s=14)
        ax.plot(group["processes"], group["tasks_per_s"], marker="o", color=color(backend),
                label=f"{backend_label(backend)}: median of {int(group['turns'].min())} runs "
                      f"({int(group['tasks'].iloc[0])} tasks each)")
    workers = int(drains["workers_per_process"].iloc[0])
    ax.set_xticks(sorted(drains["processes"].unique()))
    ax.set_xlabel(f"consumer processes ({workers} thread workers each)")
    ax.set_ylabel("drain rate (no-op tasks/s)")
    ax.set_ylim(bottom=0)
    ax.set_title("Draining a full queue")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return ax.figure


def contention(summary: pd.DataFrame, ax=None):
    """Enqueue latency p50, p99 and max while P producers and C consumer processes share the queue."""
    ax = ax or plt.subplots(figsize=(7, 4))[1]
    levels = list(dict.fromkeys(zip(summary["producers"], summary["consumers"], strict=True)))
    x = np.arange(len(levels))
    for offset, (backend, group) in zip((-0.15, 0.15), summary.groupby("backend", sort=False), strict=False):
        group = group.set_index(["producers", "consumers"]).loc[levels]
        shade = color(backend)
        ax.plot(x + offset, group["p50_us"] / 1e3, "o", color=shade, label=f"{backend_label(backend)} p50")
        ax.plot(x + offset, group["p99_us"] / 1e3, "^", color=shade, label=f"{backend_label(backend)} p99")
        ax.plot(x + offset, group["max_us"] / 1e3, "x", color=shade, label=f"{backend_label(backend)} max")
        for k, (errors, n) in enumerate(zip(group["errors"], group["n_overlap"], strict=True)):
            ax.annotate(f"n={n}\nerrors={errors}", (x[k] + offset, group["max_us"].iloc[k] / 1e3), fontsize=7,
                        textcoords="offset points", xytext=(0, 6), ha="center")
    ax.set_xticks(x, [f"{p} producer(s)\n{c} consumer process(es)" for p, c in levels])
    ax.set_xlabel("producers enqueueing and consumer processes draining at once")
    ax.set_yscale("log")
    low, high = ax.get_ylim()
    ax.set_ylim(low, high * 40)  # room above the points' labels for the legend, under the title
    ax.set_ylabel("one enqueue (ms, log scale)")
    ax.set_title("Enqueue latency while producers and consumers share the queue")
    ax.grid(True, which="both", axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=3, loc="upper left")
    return ax.figure


CPU_PARTS = [("cpu_web_pct", "web server", color("web")), ("cpu_consumers_pct", "consumers", color("consumers")),
             ("cpu_servers_pct", "the queue's servers", color("redis")), ("cpu_smtp_pct", "SMTP server", color("smtp")),
             ("cpu_generator_pct", "load generator", color("generator"))]


def cpu_split(cpu: pd.DataFrame, ax=None):
    """Where the machine's 200 % of CPU went under the same load, per backend (median over turns)."""
    ax = ax or plt.subplots(figsize=(7, 4))[1]
    medians = cpu.groupby("backend", sort=False).median(numeric_only=True)
    bottom = np.zeros(len(medians))
    x = np.arange(len(medians))
    for column, label, shade in CPU_PARTS:
        values = medians[column].to_numpy()
        ax.bar(x, values, 0.5, bottom=bottom, label=label, color=shade)
        bottom += values
    ax.axhline(200, color="black", linestyle="--", linewidth=1, label="both cores (200 %)")
    rate = cpu["rate"].iloc[0]
    ax.set_xticks(x, [backend_label(b) for b in medians.index])
    ax.set_xlabel("queue backend")
    ax.set_ylabel("CPU (% of one core)")
    ax.set_ylim(0, 210)
    ax.set_title(f"CPU under {rate:g} deferred requests/s")
    ax.legend(fontsize=8, loc="upper right")
    return ax.figure
