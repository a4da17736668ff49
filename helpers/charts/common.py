"""The palette and the chart types several notebooks share. Every axis is labelled with its unit; sample counts go
in the legend."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

# One palette for every chart: an endpoint, a task's phase, a part of the lab, a queue backend keep their colour
# from one notebook to the next.
COLORS = {
    "noop": "#7f7f7f", "deferred": "#1f77b4", "blocking": "#d62728", "ledger": "#2ca02c",  # endpoints, paths
    "retries": "#ff7f0e", "production": "#9467bd",  # the deferred email's other designs (notebook 05)
    "request": "#7f7f7f", "queue wait": "#ff7f0e", "run": "#2ca02c",  # a task's phases
    "web": "#2ca02c", "consumers": "#1f77b4", "redis": "#d62728", "smtp": "#9467bd", "generator": "#7f7f7f",
    "huey_sqlite": "#1f77b4", "huey_redis": "#d62728",  # queue backends (helpers.stack.queues)
    "huey_postgres": "#17becf", "djtasks_immediate": "#7f7f7f", "djtasks_db_sqlite": "#aec7e8",
    "djtasks_db_postgres": "#9edae5", "rq_redis": "#ff7f0e", "celery_redis": "#2ca02c",
    "celery_redis_acks_late": "#98df8a",
    "postgres": "#bcbd22",  # the PostgreSQL server, a part of the lab beside redis
}
OTHER = "#8c564b"


def number(value: float) -> str:
    """A figure as people read it: three significant figures at most, thousands separated (309, 1.61, 21.8,
    2,517), never 1.19e+03."""
    value = float(value)
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}".removesuffix(".0")
    return f"{value:.2f}".rstrip("0").rstrip(".") if value else "0"


def counted(count: float, noun: str, plural: str | None = None) -> str:
    """A count with its noun, singular or plural as the count says: "1 task", "36 tasks", "0 emails"."""
    return f"{number(count)} {noun_for(count, noun, plural)}"


def noun_for(count: float, noun: str, plural: str | None = None) -> str:
    """`noun` for a count of one, its plural for any other."""
    return noun if count == 1 else plural or noun + "s"


def color(key: str) -> str:
    return COLORS.get(key, OTHER)


def backend_label(name: str) -> str:
    """A queue backend's name as tables and charts show it."""
    from helpers.stack.queues import backend_class

    return backend_class(name).label


def latency_cdf(timings: pd.DataFrame, value: str = "total_ms", ax=None, title: str | None = None):
    """Empirical CDF per endpoint on a log time axis: every request is visible, tails included."""
    ax = ax or plt.subplots(figsize=(7, 4))[1]
    for label, group in timings.groupby("label", sort=False):
        values = np.sort(group[value].dropna().to_numpy())
        ax.step(values, np.arange(1, len(values) + 1) / len(values), where="post",
                label=f"{label} (n={len(values)})", color=COLORS.get(label))
    ax.set_xscale("log")
    ax.set_xlabel("response time per request (ms, log scale)")
    ax.set_ylabel("requests at or below (fraction, 0 to 1)")
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
        ax.bar_label(bars, labels=[number(v) for v in values], fontsize=8)
    ax.set_xticks(x, [f"{label}\n(n={summary.loc[label, 'n']})" for label in labels])
    ax.set_yscale("log")
    ax.set_ylabel("response time (ms, log scale)")
    ax.set_xlabel("endpoint")
    ax.set_title(title or "Percentiles per endpoint")
    ax.legend()
    return ax


def error_bars(summary: pd.DataFrame, column: str):
    low, high = summary[f"{column}_ci_low"], summary[f"{column}_ci_high"]
    if low.isna().all():
        return None
    return np.vstack([(summary[column] - low).clip(lower=0), (high - summary[column]).clip(lower=0)])


def layout(fig):
    """Lay the figure out as it is saved: text inside the figure, panels apart, and the panels above a figure
    legend (one at the bottom, loc="lower center")."""
    fig.tight_layout()
    if fig.legends:
        renderer = fig.canvas.get_renderer()
        height = max(legend.get_window_extent(renderer).height for legend in fig.legends) / fig.bbox.height
        fig.tight_layout(rect=(0, height + 0.01, 1, 1))
    return fig


def save(fig, path: Path) -> Path:
    """Lay the figure out, save it as a PNG at `path` and close it."""
    layout(fig).savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def show(fig, run_dir, name: str, alt: str) -> Path:
    """Lay the figure out, save it as <run_dir>/<name>.png and show it inline, with `alt` as its text alternative
    (in JupyterLab and in the HTML export); returns the file."""
    import base64
    import html

    from IPython.display import display

    path = save(fig, Path(run_dir) / f"{name}.png")
    encoded = base64.b64encode(path.read_bytes()).decode()
    display({"image/png": encoded, "text/plain": alt,
             "text/html": f'<img src="data:image/png;base64,{encoded}" alt="{html.escape(alt)}">'}, raw=True)
    return path
