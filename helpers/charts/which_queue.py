"""Charts of notebook 07 (which queue): one bar or dot per backend, every axis labelled with its unit, sample counts
in the labels. Each function takes the matrix (helpers.experiments.which_queue.matrix) or a table of that module and
returns its figure, for helpers.charts.common.show. The pickups reuse notebook 06's chart."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from helpers.charts.common import backend_label, color, number
from helpers.charts.scale_out import pickups as pickup_dots

__all__ = ["drain", "end_to_end", "kills", "memory", "pickup_dots", "view_cost"]


SERIES = ("#1f77b4", "#ff7f0e", "#7f7f7f", "#9467bd")  # one colour per measured column; the backend is on the x axis


def _bars(ax, table: pd.DataFrame, columns: list[tuple[str, str]], notes: dict[str, str] | None = None):
    """Grouped bars, one group per backend (x axis), one bar per (column, legend label), labelled with their value
    (n/a where there is none); a single column takes the backends' own colours. `notes`: a line under a backend's
    name."""
    x = np.arange(len(table))
    width = 0.8 / len(columns)
    for k, (column, label) in enumerate(columns):
        values = table[column].astype(float).to_numpy()
        shades = [color(b) for b in table.index] if len(columns) == 1 else SERIES[k]
        bars = ax.bar(x + k * width - 0.4 + width / 2, np.nan_to_num(values), width, label=label, color=shades,
                      edgecolor="black", linewidth=0.4)
        ax.bar_label(bars, labels=["n/a" if np.isnan(v) else number(v) for v in values], fontsize=7)
    notes = notes or {}
    ax.set_xticks(x, [_tick(b) + (f"\n{notes[b]}" if b in notes else "") for b in table.index], fontsize=7)
    ax.set_xlabel("queue backend")
    ax.grid(True, axis="y", alpha=0.3)
    return ax


def _tick(backend: str) -> str:
    return backend_label(backend).replace(", ", "\n").replace(" (", "\n(")


def view_cost(table: pd.DataFrame, ax=None):
    """What the enqueue adds to the request (deferred p50 - validate p50, µs), through the timing client and wrk."""
    ax = ax or plt.subplots(figsize=(11, 4.5))[1]
    columns = [("enqueue_cost_us", "timing client, fresh connection each")]
    if "wrk_enqueue_cost_us" in table and table["wrk_enqueue_cost_us"].notna().any():
        columns.append(("wrk_enqueue_cost_us", "wrk, one connection"))
    _bars(ax, table, columns)
    if (table[[c for c, _ in columns]] > 0).all().all():
        ax.set_yscale("log")
        ax.set_ylabel("deferred p50 - validate p50 (µs, log scale)")
    else:  # an enqueue measured as costing nothing: below the median's noise
        ax.set_yscale("symlog", linthresh=100)
        ax.set_ylabel("deferred p50 - validate p50 (µs, symlog: linear below 100)")
    ax.set_ylim(top=ax.get_ylim()[1] * 3)  # room for the labels and the legend
    ax.set_title("What the enqueue adds to a request (immediate: the whole email)")
    ax.legend(fontsize=8)
    return ax.figure


def end_to_end(summary: pd.DataFrame, ax=None):
    """Under open-loop load, per backend (helpers.protocols.end_to_end.summary): the response's p50/p99 (due to answer)
    and completion's p50/p99 (due to the SMTP server's 250)."""
    ax = ax or plt.subplots(figsize=(11, 4.5))[1]
    _bars(ax, summary, [("response_p50_ms", "response p50"), ("response_p99_ms", "response p99"),
                        ("completion_p50_ms", "completion p50 (SMTP 250)"),
                        ("completion_p99_ms", "completion p99 (SMTP 250)")])
    ax.set_yscale("log")
    ax.set_ylim(top=ax.get_ylim()[1] * 3)
    ax.set_ylabel("time from the request's due time (ms, log scale)")
    accepted = ", ".join(f"{int(n)}" for n in summary["accepted"])
    ax.set_title(f"End to end under open-loop load (requests accepted per backend: {accepted})")
    ax.legend(fontsize=8, ncols=2)
    return ax.figure


def drain(table: pd.DataFrame, ax=None):
    """No-op tasks per second one worker empties a full queue at."""
    ax = ax or plt.subplots(figsize=(11, 4.5))[1]
    _bars(ax, table, [("drain_per_s", "one worker")])
    ax.set_yscale("log")
    ax.set_ylim(top=ax.get_ylim()[1] * 3)
    ax.set_ylabel("drain rate (no-op tasks/s, log scale)")
    ax.set_title("Draining a full queue with one worker (n/a: no worker)")
    return ax.figure


KILLED = [("kill_lost", "lost"), ("kill_duplicated", "duplicated"), ("kill_stuck", "stuck (marked running/unacked)")]


def kills(table: pd.DataFrame, ax=None):
    """Per backend, of the emails accepted while its workers were SIGKILLed: lost, duplicated, stuck, with the
    kills and the emails accepted (n) under its name. A backend without workers (immediate: the email is sent in
    the request) had nothing to kill: n/a, not zero."""
    ax = ax or plt.subplots(figsize=(11, 4.8))[1]
    killed = table.copy()
    workers = killed["has_workers"].astype(bool) if "has_workers" in killed else killed["kill_kills"] > 0
    killed.loc[~workers, [column for column, _ in KILLED]] = np.nan
    notes = {b: f"{int(row['kill_kills'])} kills, n={int(row['kill_requested'])}" if workers[b] else "no worker: n/a"
             for b, row in killed.iterrows()}
    _bars(ax, killed, KILLED, notes)
    ax.set_ylabel("emails (count)")
    ax.set_title("What SIGKILLed workers cost (n = emails accepted while its workers were killed)")
    ax.legend(fontsize=8)
    return ax.figure


def memory(table: pd.DataFrame, ax=None):
    """Resident memory per backend: the queue's servers, one worker, the web server (stacked)."""
    ax = ax or plt.subplots(figsize=(11, 4.5))[1]
    x = np.arange(len(table))
    bottom = np.zeros(len(table))
    parts = (("servers_mb", "queue's servers", color("redis")), ("worker_mb", "one worker", color("consumers")),
             ("web_mb", "web server", color("web")))
    for column, label, shade in parts:
        values = table[column].fillna(0).to_numpy()
        ax.bar(x, values, 0.6, bottom=bottom, label=label, color=shade)
        bottom += values
    ax.set_xticks(x, [backend_label(b).replace(", ", "\n").replace(" (", "\n(") for b in table.index], fontsize=7)
    ax.set_xlabel("queue backend")
    ax.set_ylabel("resident memory (MiB)")
    ax.set_title("What it takes to run (RSS, process trees)")
    ax.legend(fontsize=8)
    return ax.figure
