"""Charts of the work after the response: where each task's time went, queue depth, pickup delay, workers.
Every axis says its unit; sample counts go in legends or labels. Each function returns its figure, for
helpers.charts.common.show."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from helpers.charts.common import COLORS, latency_cdf, number

TYPE_STYLES = {"thread": {"marker": "o", "linestyle": "-"}, "process": {"marker": "s", "linestyle": "--"}}


def response_vs_completion(summary: pd.DataFrame, ax=None):
    """Per job: what the user waits for (response p50, blocking and deferred) against when the work is done
    (deferred end-to-end p50: enqueue to finish)."""
    ax = ax or plt.subplots(figsize=(8, 4.5))[1]
    jobs = sorted({label.split()[0] for label in summary.index})
    bars = [("blocking response", lambda j: summary.loc[f"{j} blocking", "p50_ms"], COLORS["blocking"]),
            ("deferred response", lambda j: summary.loc[f"{j} deferred", "p50_ms"], COLORS["deferred"]),
            ("deferred end-to-end (enqueue to finish)", lambda j: summary.loc[f"{j} deferred", "end_to_end_p50_ms"],
             COLORS["run"])]
    x = np.arange(len(jobs))
    width = 0.8 / len(bars)
    for k, (name, value, color) in enumerate(bars):
        values = [value(j) for j in jobs]
        drawn = ax.bar(x + (k - 1) * width, values, width, label=name, color=color)
        ax.bar_label(drawn, labels=[number(v) for v in values], fontsize=8)
    ax.set_xticks(x, [f"{j}\n(n={int(summary.loc[f'{j} deferred', 'n'])} per bar)" for j in jobs])
    ax.set_yscale("log")
    ax.set_xlabel("job")
    ax.set_ylabel("p50 time (ms, log scale)")
    ax.set_title("The response is fast; the work still takes its time")
    ax.legend(fontsize=8)
    return ax.figure


def timeline(tasks: pd.DataFrame, timings: pd.DataFrame, ax=None, max_rows: int = 24):
    """One row per request, in order: the request (client's view), then for a deferred one its task's queue
    wait (enqueue to pickup) and run (start to finish). Blocking requests hold the work inside the request."""
    ax = ax or plt.subplots(figsize=(11, 5))[1]
    requests = timings[~timings["warmup"]].sort_values("started_at").head(max_rows).reset_index(drop=True)
    origin = requests["started_at"].min()
    by_request = tasks.dropna(subset=["request_start"]).set_index("request_start")
    for row, request in requests.iterrows():
        start = request["started_at"] - origin
        kind = "blocking" if request["label"].endswith("blocking") else "deferred"
        ax.barh(row, request["total_ms"] / 1e3, left=start, height=0.8, color=COLORS[kind])
        if kind == "deferred" and request["started_at"] in by_request.index:
            task = by_request.loc[request["started_at"]]
            ax.barh(row, task["dequeued"] - task["enqueued"], left=task["enqueued"] - origin, height=0.4,
                    color=COLORS["queue wait"])
            ax.barh(row, task["finished"] - task["executing"], left=task["executing"] - origin, height=0.4,
                    color=COLORS["run"])
    ax.set_yticks(range(len(requests)), requests["label"], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("time since the first request (s)")
    ax.set_ylabel("request, in the order sent")
    ax.set_title(f"Who waited where ({len(requests)} requests, sent one after another)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=COLORS[k]) for k in
               ("blocking", "deferred", "queue wait", "run")]
    ax.legend(handles, ["blocking request (work inside)", "deferred request", "task: queue wait", "task: run"],
              fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(True, axis="x", alpha=0.3)
    return ax.figure


def queue_depth(result, arrivals_s: float, ax=None):
    """Sampled queue depth against the fluid prediction (growth at arrival rate minus capacity)."""
    ax = ax or plt.subplots(figsize=(8, 4.5))[1]
    depth = result.depth
    ax.step(depth["t"], depth["depth"], where="post", label=f"sampled depth (n={len(depth)} samples)")
    ax.plot(depth["t"], depth["predicted"], "--", color="black",
            label=f"predicted: ({result.arrival_rate:.0f} - {result.capacity:.1f}) tasks/s x t, then drain")
    ax.axvline(arrivals_s, color="grey", alpha=0.5, label="arrivals stop")
    ax.set_xlabel("time since the first arrival (s)")
    ax.set_ylabel("queue depth (tasks waiting)")
    ax.set_title(f"Backlog: {len(result.tasks)} tasks arriving faster than the consumer serves them")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return ax.figure


def pickup_vs_idle(pickups: pd.DataFrame, ax=None):
    """Delay from enqueue to start of a task arriving after an idle period, per polling setting, with the
    poll interval a worker is in by then (the worst case for one worker)."""
    ax = ax or plt.subplots(figsize=(8, 4.5))[1]
    for k, (setting, group) in enumerate(pickups.groupby("setting", sort=False)):
        color = f"C{k}"
        ax.scatter(group["idle_s"], group["pickup_ms"], color=color, alpha=0.7,
                   label=f"{setting}: measured (n={len(group)})")
        curve = group.sort_values("idle_s")
        ax.plot(curve["idle_s"], curve["poll_interval_ms"], color=color, alpha=0.6,
                label=f"{setting}: poll interval by then (model)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("idle time before the task arrived (s, log scale)")
    ax.set_ylabel("enqueue to start (ms, log scale)")
    ax.set_title("Pickup delay after an idle period")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return ax.figure


def worker_sweep(sweep: pd.DataFrame, axes=None):
    """Throughput against consumer workers, thread and process workers, one panel per job: every drain as a dot,
    the median over repeats as the line."""
    jobs = list(dict.fromkeys(sweep["job"]))
    axes = axes if axes is not None else plt.subplots(1, len(jobs), figsize=(6 * len(jobs), 4.2))[1]
    for ax, job in zip(np.atleast_1d(axes), jobs, strict=True):
        for k, (worker_type, group) in enumerate(sweep[sweep["job"] == job].groupby("worker_type")):
            style = {"color": f"C{k}", **TYPE_STYLES.get(worker_type, {})}
            medians = group.groupby("workers")["tasks_per_s"].median()
            ax.scatter(group["workers"], group["tasks_per_s"], alpha=0.35, color=style["color"], s=14)
            ax.plot(medians.index, medians.to_numpy(), label=f"{worker_type} workers: median of "
                    f"{group['repeat'].nunique()} drain(s) of {int(group['tasks'].iloc[0])} tasks", **style)
        ax.set_xticks(sorted(sweep["workers"].unique()))
        ax.set_xlabel("consumer workers (count)")
        ax.set_ylabel("throughput (tasks/s)")
        ax.set_title(f"{job}: throughput by workers and worker type")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    return np.atleast_1d(axes)[0].figure


def djtasks_backends(frame: pd.DataFrame, ax=None):
    """Response time of the Tasks API endpoint per TASKS backend (tasks_api_backends), as distributions."""
    ax = latency_cdf(frame.assign(label="TASKS = " + frame["backend"]), ax=ax,
                     title="POST /djtasks/email/: the same view and task, two backends")
    return ax.figure
