"""Charts of notebook 00, the index: a rerun's figures against the reference."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from helpers.runs.compare import BAND


def ratio_chart(table: pd.DataFrame, title: str | None = None):
    """Each figure of a rerun as a ratio to the reference (log scale: 2x and 0.5x are equally far from 1), blue
    inside compare.BAND, orange outside; returns the figure."""
    fig, ax = plt.subplots(figsize=(9, max(3, 0.35 * len(table))))
    low, high = BAND
    labels = [f"{n.split('-')[0]} {f.replace('_', ' ')}" for n, f in zip(table["notebook"], table["figure"],
                                                                           strict=True)]
    ax.barh(labels, table["ratio"], color=["#1f77b4" if low <= r <= high else "#ff7f0e" for r in table["ratio"]])
    ax.axvline(1.0, color="black", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("latest / reference (ratio, log scale; 1 = same as the reference)")
    ax.set_ylabel("notebook and figure")
    ax.set_title(title or "Latest run against the reference")
    ax.invert_yaxis()
    ax.grid(True, axis="x", which="both", alpha=0.3)
    return fig
