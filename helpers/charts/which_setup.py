"""Charts of notebook 09 (which setup): one horizontal row per backend and setting (the names read on the y axis at
twenty rows), every axis labelled with its unit. Each function takes the matrix (helpers.experiments.which_setup.matrix)
or one of its tables and returns its figure, for helpers.charts.common.show."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from helpers.charts.common import number

SERIES = ("#1f77b4", "#ff7f0e", "#7f7f7f")


def _rows(table: pd.DataFrame) -> list[str]:
    return list(table["label"])


def _figure(rows: int, panels: int = 1):
    return plt.subplots(1, panels, figsize=(11 + 2 * (panels - 1), 1.2 + 0.32 * rows), sharey=True, squeeze=False)


def _recovery_label(seconds: float, waited: float, declared: float) -> str:
    if not np.isnan(seconds):
        return f"{number(seconds)} s"
    if declared > waited:
        return f"past the wait (declared {number(declared)} s)"
    return f"never ({number(waited)} s waited)"


def enqueue_cost(table: pd.DataFrame):
    """The enqueue's median cost with its 95 % interval: a direct call in a loop (workers stopped), and the view's
    span around it with the workers running and stopped (µs, log scale)."""
    columns = (("enqueue_inprocess", "direct call in a loop, workers stopped"),
               ("enqueue_in_request", "in the request, workers running"),
               ("enqueue_in_request_stopped", "in the request, workers stopped"))
    fig, axes = _figure(len(table))
    ax = axes[0, 0]
    y = np.arange(len(table))
    height = 0.8 / len(columns)
    for k, (column, label) in enumerate(columns):
        values = table[f"{column}_us"].astype(float).to_numpy()
        low = values - table[f"{column}_ci_low_us"].astype(float).to_numpy()
        high = table[f"{column}_ci_high_us"].astype(float).to_numpy() - values
        ax.barh(y + k * height - 0.4 + height / 2, values, height, xerr=np.vstack([low, high]).clip(min=0),
                label=label, color=SERIES[k], edgecolor="black", linewidth=0.4, error_kw={"linewidth": 0.8})
    ax.set_yticks(y, _rows(table), fontsize=8)
    ax.set_ylabel("backend, setting")
    ax.invert_yaxis()
    ax.set_xscale("log")
    # ticks at 1, 2 and 5 per decade in plain µs: matplotlib's own minor labels (2x10^2, 3x10^2, 4x10^2) overlapped
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: number(v)))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("enqueue cost, median with its 95 % interval (µs, log scale)")
    ax.set_title("What the enqueue costs, per backend and setting")
    ax.grid(True, axis="x", alpha=0.3)
    fig.legend(loc="lower center", ncol=3, fontsize=8)
    return fig


def drain(drains: pd.DataFrame, table: pd.DataFrame):
    """Tasks per second drained by 1, 2 and 4 workers, one group of bars per backend and setting (log scale)."""
    wide = drains.pivot(index="backend", columns="workers", values="drain_per_s").reindex(table.index)
    fig, axes = _figure(len(table))
    ax = axes[0, 0]
    y = np.arange(len(wide))
    height = 0.8 / len(wide.columns)
    for k, workers in enumerate(wide.columns):
        values = wide[workers].astype(float).to_numpy()
        bars = ax.barh(y + k * height - 0.4 + height / 2, np.nan_to_num(values), height, color=SERIES[k % 3],
                       label=f"{workers} worker{'s' if workers != 1 else ''}", edgecolor="black", linewidth=0.4)
        ax.bar_label(bars, labels=["n/a" if np.isnan(v) else number(v) for v in values], fontsize=6, padding=2)
    ax.set_yticks(y, _rows(table), fontsize=8)
    ax.set_ylabel("backend, setting")
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.margins(x=0.15)
    ax.set_xlabel("no-op tasks drained per second (log scale)")
    ax.set_title("Drain against concurrency")
    ax.grid(True, axis="x", alpha=0.3)
    fig.legend(loc="lower center", ncol=len(wide.columns), fontsize=8)
    return fig


def kills_and_recovery(table: pd.DataFrame):
    """Left: emails lost and duplicated under the kills, as a share of those accepted, labelled with the counts and
    their denominators. Right: seconds from a worker's SIGKILL until its task ran again ("never" within the bound)."""
    fig, axes = _figure(len(table), panels=2)
    left, right = axes[0]
    y = np.arange(len(table))
    requested = table["kill_requested"].astype(float).clip(lower=1).to_numpy()
    for k, (column, label, colour) in enumerate((("kill_lost", "lost", "#d62728"),
                                                 ("kill_duplicated", "duplicated", "#ff7f0e"))):
        counts = table[column].astype(float).to_numpy()
        bars = left.barh(y + k * 0.4 - 0.2, 100 * counts / requested, 0.4, color=colour, label=label,
                         edgecolor="black", linewidth=0.4)
        left.bar_label(bars, labels=[f"{c:.0f}/{r:.0f}" for c, r in zip(counts, requested, strict=True)],
                       fontsize=6, padding=2)
    left.set_yticks(y, _rows(table), fontsize=8)
    left.set_ylabel("backend, setting")
    right.set_ylabel("the same rows")
    left.invert_yaxis()
    left.margins(x=0.25)
    left.set_xlabel("lost or duplicated (% of accepted)")
    left.set_title("What SIGKILLs cost")
    left.grid(True, axis="x", alpha=0.3)
    left.legend(loc="lower right", fontsize=8)
    seconds = table["recovery_recovery_s"].astype(float).to_numpy()
    bars = right.barh(y, np.nan_to_num(seconds), 0.6, color="#2ca02c", edgecolor="black", linewidth=0.4)
    right.bar_label(bars, labels=[_recovery_label(s, b, d) for s, b, d in zip(
        seconds, table["recovery_bound_s"].astype(float), table["redelivery_after_s"].astype(float), strict=True)],
                    fontsize=6, padding=2)
    right.margins(x=0.6)
    right.set_xlabel("SIGKILL to a rerun by another worker (s)")
    right.set_title("Recovery of a killed worker's task")
    right.grid(True, axis="x", alpha=0.3)
    return fig
