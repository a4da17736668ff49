"""Charts of notebook 05 (faults): what each fault cost each design, and an overload with and without a bounded
backlog. Every axis labelled with its unit; each function returns its figure, for charts.common.show()."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from helpers.charts.common import OTHER, color
from helpers.experiments.faults import DESIGNS


def lost_by_fault(table: pd.DataFrame):
    """Per fault and design (every backend summed), emails lost (solid) and duplicated (hatched, stacked on top) as a
    share of those requested; each bar is labelled lost+duplicated / requested (helpers.experiments.faults.run_faults'
    table). Under the permanent fault a lost email is one the design did not deliver and could have: none here."""
    fig, ax = plt.subplots(figsize=(12, 4.8))
    faults = list(dict.fromkeys(table["fault"]))
    designs = [d for d in DESIGNS if (table["design"] == d).any()]
    x = np.arange(len(faults))
    width = 0.8 / len(designs)
    for k, design in enumerate(designs):
        rows = table[table["design"] == design].groupby("fault")[["lost", "duplicated", "requested"]].sum()
        rows = rows.reindex(faults, fill_value=0)
        requested = rows["requested"].where(rows["requested"] > 0)
        lost_pct = (100 * rows["lost"] / requested).fillna(0)
        duplicated_pct = (100 * rows["duplicated"] / requested).fillna(0)
        where, shade = x + (k - (len(designs) - 1) / 2) * width, color(DESIGNS[design])
        bars = ax.bar(where, lost_pct, width * 0.95, color=shade, label=f"{design}: lost")
        ax.bar(where, duplicated_pct, width * 0.95, bottom=lost_pct, color="white", edgecolor=shade, hatch="//",
               label=f"{design}: duplicated")
        ax.bar_label(bars, labels=[f"{lost + dup}/{n}" for lost, dup, n in
                                   zip(rows["lost"], rows["duplicated"], rows["requested"], strict=True)],
                     fontsize=7, rotation=90, padding=2)
    ax.set_xticks(x, [fault.replace("_", " ") for fault in faults])
    ax.set_xlabel("fault injected under load (every backend measured, summed)")
    ax.set_ylabel("emails lost or duplicated (% of requested)")
    ax.set_title("What each fault cost each design (labels: lost + duplicated / requested)")
    ax.legend(fontsize=7, ncols=2)
    ax.grid(True, axis="y", alpha=0.3)
    return fig


def overload(overload_table: pd.DataFrame, depth: pd.DataFrame):
    """Left: queue depth over time, unbounded and bounded, with the bound. Right: requests accepted (202) and
    shed (503) in each (helpers.experiments.faults.run_overload's two frames)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4))
    by_bound = overload_table.set_index("max_backlog")
    bound = int(by_bound.index.max())
    names = {0: "unbounded", bound: f"bound {bound}"}
    for max_backlog, frame in depth.groupby("max_backlog"):
        left.plot(frame["t_s"], frame["depth"], color=color("deferred"), linestyle="-" if max_backlog else "--",
                  label=names[max_backlog])
    left.axhline(bound, color="black", linestyle=":", label="the bound")
    rate, seconds = by_bound["rate"].iloc[0], by_bound["duration_s"].iloc[0]
    left.set_xlabel("time since the load generator was started (s)")
    left.set_ylabel("tasks waiting in the queue")
    left.set_title(f"Queue depth at {rate:.0f} requests/s for {seconds:.1f} s")
    left.legend()
    left.grid(True, alpha=0.3)
    labels = [names[b] for b in by_bound.index]
    right.bar(labels, by_bound["requested"], color=color("deferred"), label="accepted (202)")
    right.bar(labels, by_bound["refused_503"], bottom=by_bound["requested"], color=OTHER,
              label="shed (503 + Retry-After)")
    right.set_xlabel("backlog setting")
    right.set_ylabel("requests")
    right.set_title("Accepted vs shed")
    right.legend()
    return fig
