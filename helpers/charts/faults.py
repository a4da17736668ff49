"""Charts of notebook 05 (faults): what each fault cost each design, and an overload with and without a bounded
backlog. Every axis labelled with its unit; each function returns its figure, for charts.common.show()."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from helpers.charts.common import OTHER, color, counted, number
from helpers.experiments.faults import DESIGNS


def lost_by_fault(table: pd.DataFrame):
    """Per fault and design (every backend summed), emails lost (solid) and duplicated (hatched, stacked on top) as a
    share of those the site accepted; each bar is labelled lost+duplicated / accepted (helpers.experiments.faults.
    run_faults' table). Under the permanent fault a lost email is one the design did not deliver and could have: none
    here. A fault whose requests failed at the client (`client_errors`: the web restart) says how many, since those
    were never accepted and so are in no bar."""
    fig, ax = plt.subplots(figsize=(12, 5))
    faults = list(dict.fromkeys(table["fault"]))
    designs = [d for d in DESIGNS if (table["design"] == d).any()]
    x = np.arange(len(faults))
    width = 0.8 / len(designs)
    tallest, any_duplicated = 0.0, False
    for k, design in enumerate(designs):
        rows = table[table["design"] == design].groupby("fault")[["lost", "duplicated", "requested"]].sum()
        rows = rows.reindex(faults, fill_value=0)
        requested = rows["requested"].where(rows["requested"] > 0)
        lost_pct = (100 * rows["lost"] / requested).fillna(0)
        duplicated_pct = (100 * rows["duplicated"] / requested).fillna(0)
        tallest = max(tallest, float((lost_pct + duplicated_pct).max()))
        any_duplicated = any_duplicated or bool((rows["duplicated"] > 0).any())
        where, shade = x + (k - (len(designs) - 1) / 2) * width, color(DESIGNS[design])
        ax.bar(where, lost_pct, width * 0.95, color=shade, label=design)
        ax.bar(where, duplicated_pct, width * 0.95, bottom=lost_pct, color="white", edgecolor=shade, hatch="//")
        totals = ax.bar(where, lost_pct + duplicated_pct, width * 0.95, fill=False, linewidth=0)
        ax.bar_label(totals, labels=[f"{lost + dup}/{n}" if n else "" for lost, dup, n in
                                     zip(rows["lost"], rows["duplicated"], rows["requested"], strict=True)],
                     fontsize=7, rotation=90, padding=2)
    if any_duplicated:
        ax.bar([np.nan], [np.nan], color="white", edgecolor="grey", hatch="//", label="duplicated (hatched)")
    ax.set_ylim(0, max(tallest, 1.0) * 1.35)  # room above the tallest bar for its label, under the title
    failed = (table.groupby("fault")["client_errors"].sum().reindex(faults, fill_value=0)
              if "client_errors" in table else pd.Series(0, index=faults))
    lost = table.groupby("fault")["lost"].sum().reindex(faults, fill_value=0)
    for i, fault in enumerate(faults):
        if failed[fault] > 0:
            ax.annotate(f"{counted(failed[fault], 'request')} failed\nat the client (never\naccepted); "
                        f"{number(lost[fault])}\naccepted lost",
                        (x[i], 0.55), xycoords=("data", "axes fraction"), ha="center", va="center", fontsize=8,
                        bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "grey"})
    ax.set_xticks(x, [fault.replace("_", " ").replace("smtp", "SMTP") for fault in faults])
    ax.set_xlabel("fault injected under load (every backend measured, summed)")
    ax.set_ylabel("emails lost or duplicated (% of accepted)")
    ax.set_title("What each fault cost each design (labels: lost + duplicated / accepted)")
    ax.legend(fontsize=8, ncols=2, loc="upper right", title="design")
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
    left.set_ylabel("tasks waiting in the queue (count)")
    left.set_title(f"Queue depth at {rate:.0f} requests/s for {seconds:.1f} s")
    left.legend()
    left.grid(True, alpha=0.3)
    labels = [names[b] for b in by_bound.index]
    right.bar(labels, by_bound["requested"], color=color("deferred"), label="accepted (202)")
    right.bar(labels, by_bound["refused_503"], bottom=by_bound["requested"], color=OTHER,
              label="shed (503 + Retry-After)")
    right.set_xlabel("backlog setting")
    right.set_ylabel("requests (count)")
    right.set_title("Accepted vs shed")
    right.legend()
    return fig
