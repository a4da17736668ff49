"""Charts of notebook 08, does async fix it: latency and throughput against the arrival rate for every variant, and
the model's predicted capacity beside the measured one."""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import ScalarFormatter

from helpers.charts.common import COLORS

if TYPE_CHECKING:
    from helpers.experiments.does_async_fix_it import Measured

# The blocking and deferred paths keep the lab's colours; the ways of sending from the request in between. The two
# deferred variants keep up alike: uvicorn's is dashed with small markers, drawn over gunicorn's large ones.
VARIANT_STYLE = {
    "sync": (COLORS["blocking"], "o"), "gthread": ("#ff7f0e", "s"), "async": ("#2ca02c", "D"),
    "thread_sensitive": ("#9467bd", "^"), "thread_pool": ("#8c564b", "v"),
    "deferred_gunicorn": (COLORS["deferred"], "o"), "deferred_uvicorn": ("#17becf", "D"),
}
LINE_STYLE = {"deferred_gunicorn": {"markersize": 9, "lw": 3, "zorder": 2},
              "deferred_uvicorn": {"markersize": 4, "ls": "--", "zorder": 3}}


def variant_label(name: str) -> str:
    """A variant as a reader names it: its view and web server (does_async_fix_it.VARIANTS)."""
    from helpers.experiments.does_async_fix_it import BY_NAME

    return BY_NAME[name].label


def _variant_lines(ax, measured: Measured, column: str):
    """One line per variant of `column` against the offered rate; points past saturation drawn hollow."""
    for name in measured.setup.variants:
        points = measured.variant_points(name)
        color, marker = VARIANT_STYLE[name]
        style = {"ls": "-", "markersize": 6, **LINE_STYLE.get(name, {})}
        ax.plot(points["offered_rps"], points[column], color=color, marker=marker, **style,
                label=f"{variant_label(name)} (n={int(points['requests'].sum())})")
        away = points[points["ran_away"]]
        ax.plot(away["offered_rps"], away[column], marker, color=color, markerfacecolor="white",
                markersize=style["markersize"] + 3, zorder=style.get("zorder", 2))


def latency_vs_rate(measured: Measured):
    """Left p50, right p99 of the latency from the moment each request was due, against the open-loop arrival rate,
    both on log axes, with the SMTP delay and a tenth of it; returns the figure."""
    fig, axes = plt.subplots(1, 2, figsize=(14, 6.2), sharey=True)
    delay_ms = measured.setup.smtp_delay_s * 1e3
    for ax, column, title in zip(axes, ("latency_p50_ms", "latency_p99_ms"), ("p50", "p99"), strict=True):
        _variant_lines(ax, measured, column)
        ax.axhline(delay_ms, color="black", lw=1, ls="--", label=f"SMTP delay {delay_ms:.0f} ms")
        ax.axhline(delay_ms / 10, color="grey", lw=1, ls=":", label="a tenth of it")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.set_xlabel("arrival rate (requests/s, open loop, Poisson; log)")
        ax.set_ylabel(f"response time {title} (ms from the moment due; log)")
        ax.set_title(f"Response time {title} against arrival rate (hollow: latency ran away)")
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, ncols=3, loc="lower center", frameon=False)  # below, over no curve
    return fig


def throughput_vs_rate(measured: Measured):
    """Successful answers per second against the arrival rate (log-log), beside throughput = rate, with each
    variant's predicted capacity as a dashed line of its colour; returns the figure."""
    fig, ax = plt.subplots(figsize=(11, 7))
    _variant_lines(ax, measured, "goodput_rps")
    rates = measured.points["offered_rps"]
    span = np.array([rates.min() * 0.8, rates.max() * 1.2])
    ax.plot(span, span, color="grey", lw=1, ls=":", label="throughput = arrival rate")
    for name in measured.setup.variants:
        predicted, _ = measured.predicted(name)
        if predicted <= span[1] * 2:
            ax.axhline(predicted, color=VARIANT_STYLE[name][0], lw=1, ls="--", alpha=0.8)
    ax.plot([], [], color="black", lw=1, ls="--", label="predicted capacity (model), per variant")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.set_xlabel("arrival rate (requests/s, open loop; log)")
    ax.set_ylabel("successful answers (per second; log)")
    ax.set_title("Throughput against arrival rate: where each variant falls behind (hollow: latency ran away)")
    ax.grid(True, which="both", alpha=0.3)
    fig.legend(*ax.get_legend_handles_labels(), fontsize=8, ncols=2, loc="lower center", frameon=False)
    return fig


def model_vs_measured(measured: Measured):
    """Predicted against measured saturation throughput per variant (horizontal bars, log axis); a variant that
    never ran away within the rate ladder shows its highest measured throughput, a lower bound; returns the figure."""
    table = measured.model_table()
    fig, ax = plt.subplots(figsize=(10, 4.5))
    y = np.arange(len(table))
    ax.barh(y + 0.2, table["predicted_rps"], 0.4, color="#bbbbbb", label="predicted (lowest bound)")
    colors = [VARIANT_STYLE[name][0] for name in table["variant"]]
    bars = ax.barh(y - 0.2, table["measured_rps"], 0.4, color=colors, label="measured")
    for bar, ran_away in zip(bars, table["ran_away"], strict=True):
        if not ran_away:
            bar.set_hatch("//")
    ax.set_yticks(y, [f"{variant_label(v)}\n(bound: {b})" for v, b in zip(table["variant"], table["bound_by"],
                                                                          strict=True)], fontsize=7)
    ax.set_xscale("log")
    ax.set_xlim(left=0.5 * min(table["predicted_rps"].min(), table["measured_rps"].min()))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.set_xlabel("saturation throughput (requests/s; log; hatched: not reached, a lower bound)")
    ax.set_ylabel("variant (the model's binding resource)")
    ax.set_title("The model's capacity beside the measured one")
    ax.invert_yaxis()
    ax.grid(True, axis="x", which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return fig
