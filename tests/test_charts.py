"""Every chart the notebooks and the findings report draw, drawn from the reference run's committed data (no lab),
reads at a glance: no text outside the figure or over other text, no legend over the data, every axis labelled,
every numeric axis with its unit.

Notebooks 02 and 08 committed their point tables and notebook 07 its matrix as figures: those charts are drawn from
them exactly (helpers.charts.reference). The others committed their medians and counts, not every request: their
inputs are built from those (each median repeated with a small spread, as many times as the run measured), which
is what the layout depends on: the series, their names, their counts and the magnitudes.
"""

from __future__ import annotations

import re
from functools import partial

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.legend import Legend  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from helpers.charts import common  # noqa: E402
from helpers.charts import reference as ref  # noqa: E402
from helpers.charts.common import backend_label  # noqa: E402

TOLERANCE_PX = 1.5  # boxes touching by this much are not overlapping (antialiasing, rounding)
UNIT = re.compile(r"\([^)]+\)")  # "(ms, log scale)", "(count)", "(% of one core)"
SCIENTIFIC = re.compile(r"\d\.?\d*e[+-]\d+")  # 1.19e+03
SNAKE = re.compile(r"\b[a-z0-9]+(?:_[a-z0-9]+)+\b")  # deferred_gunicorn in a legend or on a tick
CODE_NAMES = {"sync_to_async", "thread_sensitive"}  # Django's and asgiref's own names: a reader looks these up


# -- what a chart must not do ----------------------------------------------------------------------------------------


def _texts(fig) -> list[tuple[str, Text]]:
    """(where, text artist) of every visible, non-empty text: titles, axis labels, tick labels, legends, annotations
    and bar labels, figure texts."""
    found = [("figure text", t) for t in fig.texts]
    if fig._suptitle is not None:
        found.append(("suptitle", fig._suptitle))
    for k, ax in enumerate(fig.axes):
        if not ax.get_visible():
            continue
        found += [(f"axes {k} title", t) for t in (ax.title, ax._left_title, ax._right_title)]
        found += [(f"axes {k} {name}label", axis.label) for name, axis in (("x", ax.xaxis), ("y", ax.yaxis))]
        for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
            low, high = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if low - 1e-9 * abs(high - low) <= tick.get_loc() <= high + 1e-9 * abs(high - low):
                    found += [(f"axes {k} {name} tick", label) for label in (tick.label1, tick.label2)]
        found += [(f"axes {k} text", t) for t in ax.texts]
        for legend in [ax.get_legend()] if ax.get_legend() else []:
            found += [(f"axes {k} legend", t) for t in legend.get_texts()] + [(f"axes {k} legend", legend.get_title())]
    for legend in fig.legends:
        found += [("figure legend", t) for t in legend.get_texts()]
    return [(where, t) for where, t in found if t.get_visible() and t.get_text().strip()]


def _shrunk(box):
    return box.expanded(1, 1).padded(-TOLERANCE_PX)


def layout_faults(fig) -> list[str]:
    """What reads badly in the laid-out figure: text outside it, text over text, a number in scientific notation, a
    series or category by its code name, a legend over plotted points, an axis without a label, a numeric axis
    without a unit in parentheses."""
    common.layout(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    page = fig.bbox.padded(TOLERANCE_PX)
    texts = [(where, t, t.get_window_extent(renderer)) for where, t in _texts(fig)]
    faults = [f"{where} {t.get_text()!r} outside the figure" for where, t, box in texts
              if not (page.contains(box.x0, box.y0) and page.contains(box.x1, box.y1))]
    for where, t, _ in texts:
        if SCIENTIFIC.search(t.get_text()):
            faults.append(f"{where} {t.get_text()!r}: a number for machines (write 1,190)")
        if "tick" in where or "legend" in where:
            names = set(SNAKE.findall(t.get_text())) - CODE_NAMES
            faults += [f"{where} {t.get_text()!r}: {name!r} is a code name" for name in sorted(names)]
    for i, (where, t, box) in enumerate(texts):
        for other_where, other, other_box in texts[i + 1:]:
            if _shrunk(box).overlaps(_shrunk(other_box)):
                faults.append(f"{where} {t.get_text()!r} over {other_where} {other.get_text()!r}")
    for k, ax in enumerate(fig.axes):
        legend = ax.get_legend()
        if legend is not None and legend.get_visible():
            faults += _legend_over_data(ax, legend, renderer, k)
        for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
            label = axis.label.get_text().strip()
            shared = (ax.get_shared_y_axes() if name == "y" else ax.get_shared_x_axes()).get_siblings(ax)
            if not label and any(s.yaxis.label.get_text() if name == "y" else s.xaxis.label.get_text()
                                 for s in shared if s is not ax):
                continue  # a shared axis labelled on its sibling
            categorical = axis.units is not None or any(_named(t.label1.get_text()) for t in axis.get_major_ticks())
            if not label:
                faults.append(f"axes {k} {name} axis has no label")
            elif not categorical and not UNIT.search(label):
                faults.append(f"axes {k} {name} axis {label!r} says no unit in parentheses")
    return faults


def _named(tick: str) -> bool:
    """A tick label that names something (a category) rather than a number ("1,190", "$\\mathdefault{10^{3}}$")."""
    return bool(re.search(r"[A-Za-df-z]", tick.replace("\\mathdefault", "")))


def _legend_over_data(ax, legend: Legend, renderer, k: int) -> list[str]:
    """The plotted points (line vertices, markers, scatter dots) the legend's box covers."""
    box = _shrunk(legend.get_window_extent(renderer))
    covered = []
    for line in ax.get_lines():
        if not line.get_visible() or line.get_label().startswith("_child") and len(line.get_xdata()) == 0:
            continue
        xy = line.get_transform().transform(np.column_stack([line.get_xdata(), line.get_ydata()]).astype(float))
        if len(xy) > 2 or line.get_marker() not in ("None", None, ""):  # a reference line (axhline) may run under it
            inside = [p for p in xy if np.isfinite(p).all() and box.contains(*p)]
            if inside:
                covered.append(f"axes {k} legend covers {len(inside)} point(s) of {line.get_label()!r}")
    for collection in ax.collections:
        offsets = collection.get_offsets()
        if len(offsets) and collection.get_visible():
            xy = collection.get_offset_transform().transform(np.asarray(offsets, float))
            inside = [p for p in xy if np.isfinite(p).all() and box.contains(*p)]
            if inside:
                covered.append(f"axes {k} legend covers {len(inside)} point(s) of {collection.get_label()!r}")
    return covered


# -- the inputs the committed data does not hold in full ------------------------------------------------------------


def _spread(median: float, n: int) -> np.ndarray:
    """n values whose median is `median`, spread ±20 % (a log-symmetric spread: the median stays)."""
    return median * np.exp(np.linspace(-0.2, 0.2, max(int(n), 1)))


def _figures(notebook: str) -> dict:
    return ref.run(notebook)["figures"]


def _01():
    from helpers.charts.blocking_vs_deferred import overhead_chart
    from helpers.experiments.blocking_vs_deferred import OverheadResult

    figures, params = _figures("01-blocking-vs-deferred"), ref.run("01-blocking-vs-deferred")["parameters"]
    n = {"noop": params["requests"], "deferred": params["requests"], "blocking": params["blocking_requests"]}
    timings = pd.concat([pd.DataFrame({"label": label, "total_ms": _spread(figures[f"{label}_p50_ms"], n[label]),
                                       "warmup": False}) for label in n], ignore_index=True)
    summary = timings.groupby("label", sort=False)["total_ms"].describe(percentiles=[0.5, 0.95])
    summary = summary.rename(columns={"50%": "p50_ms", "95%": "p95_ms", "count": "n"}).astype({"n": int})
    return overhead_chart(OverheadResult(timings, summary, 0, 0, 0.0, 0, 0))


def _03(chart: str):
    from helpers.charts import work_still_happens as charts

    figures, params = _figures("03-the-work-still-happens"), ref.run("03-the-work-still-happens")["parameters"]
    if chart == "response-vs-completion":
        n = params["requests"]
        summary = pd.DataFrame({f"{job} {kind}": {"p50_ms": figures[f"{job}_{kind}_p50_ms"], "n": n,
                                                  "end_to_end_p50_ms": figures[f"{job}_end_to_end_p50_ms"]}
                                for job in ("email", "thumbnail") for kind in ("blocking", "deferred")}).T
        return charts.response_vs_completion(summary)
    if chart == "timeline":
        n, delay = params["requests"], params["smtp_delay_s"]
        rows, tasks, t = [], [], 0.0
        for k in range(2 * n):
            kind = "blocking" if k % 2 else "deferred"
            total = delay * 1.05 if kind == "blocking" else 0.002
            rows.append({"label": f"email {kind}", "started_at": t, "total_ms": total * 1e3, "warmup": False})
            if kind == "deferred":
                tasks.append({"request_start": t, "enqueued": t + 0.001, "dequeued": t + 0.05,
                              "executing": t + 0.05, "finished": t + 0.05 + delay})
            t += total + 0.01
        return charts.timeline(pd.DataFrame(tasks), pd.DataFrame(rows))
    if chart == "queue-depth":
        from types import SimpleNamespace

        rate, capacity, seconds = figures["backlog_arrival_rate"], figures["backlog_capacity_per_s"], \
            params["backlog_seconds"]
        t = np.linspace(0, seconds + figures["backlog_peak_predicted"] / capacity, 60)
        predicted = np.where(t <= seconds, (rate - capacity) * t,
                             np.maximum((rate - capacity) * seconds - capacity * (t - seconds), 0))
        depth = pd.DataFrame({"t": t, "depth": np.round(predicted * 0.95), "predicted": predicted})
        return charts.queue_depth(SimpleNamespace(depth=depth, arrival_rate=rate, capacity=capacity,
                                                  tasks=range(int(rate * seconds))), seconds)
    if chart == "pickup":
        rows = []
        for setting in params["polling"]:
            for idle in params["idle_periods_s"]:
                for value in _spread(figures[f"pickup_p50_ms_{setting}"], params["idle_repeats"]):
                    rows.append({"setting": setting, "idle_s": idle, "pickup_ms": value,
                                 "poll_interval_ms": params["polling"][setting]["consumer_max_delay_s"] * 1e3})
        return charts.pickup_vs_idle(pd.DataFrame(rows))
    if chart == "workers":
        rows = [{"job": job, "worker_type": kind, "workers": w, "repeat": r, "tasks": tasks,
                 "tasks_per_s": w * (10 if job == "email" else 3) * (1 + 0.05 * r)}
                for job, tasks in params["sweep_tasks"].items() for kind in ("thread", "process")
                for w in params["sweep_workers"] for r in range(params["sweep_repeats"])]
        return charts.worker_sweep(pd.DataFrame(rows))
    frame = pd.concat([pd.DataFrame({"backend": backend, "total_ms": _spread(
        figures[f"djtasks_response_p50_ms_{backend}"], params["djtasks_requests"])})
        for backend in ("immediate", "huey")], ignore_index=True)
    return charts.djtasks_backends(frame)


def _04(chart: str):
    from helpers.charts import what_the_user_sees as charts

    figures = _figures("04-what-the-user-sees")
    columns = ("ttfb", "ttfb_request", "inp", "request", "feedback", "delivered")
    rows = []
    for label, medians in figures["medians"].items():
        variant, path = label.split("/")
        values = {c: _spread(medians[c], figures["trials_per_variant"]) if medians[c] is not None
                  else [np.nan] * figures["trials_per_variant"] for c in columns}
        rows += [{"label": label, "variant": variant, "path": path, **{f"{c}_ms": values[c][k] for c in columns}}
                 for k in range(figures["trials_per_variant"])]
    timed = pd.DataFrame(rows)
    return {"ttfb": charts.ttfb_chart, "inp": charts.inp_chart, "feedback": charts.feedback_chart}[chart](timed)


def _05():
    from helpers.charts import faults as charts

    figures = _figures("05-faults")
    overload = pd.DataFrame(figures["overload"])
    depth = pd.concat([pd.DataFrame({"max_backlog": row["max_backlog"], "t_s": np.linspace(0, row["duration_s"], 20),
                                     "depth": np.linspace(0, row["max_depth"], 20)})
                       for row in figures["overload"]], ignore_index=True)
    return charts.overload(overload, depth)


def _06(chart: str):
    from helpers.charts import scale_out as charts

    meta = ref.run("06-scale-out")
    figures, params = meta["figures"], meta["parameters"]
    backends = ["huey_sqlite", "huey_redis"]
    if chart == "view":
        summary = pd.DataFrame([{"backend": b, "endpoint": e, "p50_ms": figures[f"{b}_view_{e}_p50_ms"],
                                 "p99_ms": 2 * figures[f"{b}_view_{e}_p50_ms"], "n": params["view_requests"]}
                                for b in backends for e in ("noop", "deferred")]).set_index(["backend", "endpoint"])
        return charts.view_latency(summary)
    if chart == "pickup":
        rows = [{"setting": f"{backend_label(b)}, {s} polling", "backend": b, "pickup_ms": v}
                for b, settings in (("huey_sqlite", ("default", "tuned")), ("huey_redis", ("default",)))
                for s in settings for idle in params["idle_s"]
                for v in _spread(figures[f"{b}_{'tuned_' if s == 'tuned' else ''}pickup_enqueue_to_start_p50_ms"],
                                 params["pickup_repeats"])]
        return charts.pickups(pd.DataFrame(rows))
    if chart == "drain":
        rows = [{"backend": b, "processes": n, "turn": turn, "workers_per_process": params["workers_per_process"],
                 "tasks": params["drain_tasks"],
                 "tasks_per_s": figures[f"{b}_drain_{n}_consumers_tasks_per_s" if n > 1 else f"{b}_drain_tasks_per_s"]}
                for b in backends for n in params["consumer_processes"] for turn in range(params["drain_turns"])]
        return charts.drain_vs_processes(pd.DataFrame(rows))
    if chart == "contention":
        rows = [{"backend": b, "producers": p, "consumers": c, "p50_us": figures[f"{b}_enqueue_p50_us"],
                 "p99_us": figures[f"{b}_contended_enqueue_p99_us"], "max_us": figures[f"{b}_contended_enqueue_max_us"],
                 "errors": figures[f"{b}_enqueue_errors"], "n_overlap": int(params["rate_per_producer"] * p * 3)}
                for b in backends for p, c in params["contention_levels"]]
        return charts.contention(pd.DataFrame(rows))
    rows = [{"backend": b, "rate": params["load_rate"], "cpu_web_pct": figures[f"{b}_cpu_left_for_web_pct"] / 2,
             "cpu_consumers_pct": figures[f"{b}_consumers_cpu_pct"], "cpu_servers_pct": figures[f"{b}_server_cpu_pct"],
             "cpu_smtp_pct": 10.0, "cpu_generator_pct": 10.0} for b in backends for _ in range(params["cpu_turns"])]
    return charts.cpu_split(pd.DataFrame(rows))


def _07_pickup():
    from helpers.charts import which_queue as charts

    figures, params = _figures("07-which-queue"), ref.run("07-which-queue")["parameters"]
    rows = []
    for b in figures["backends"]:
        for setting, key in (("default", "pickup"), ("tuned", "tuned_pickup")):
            median = figures.get(f"{b}_{key}_request_to_smtp_p50_ms")
            if median is not None:
                rows += [{"setting": f"{backend_label(b)}, {setting}", "backend": b, "pickup_ms": v}
                         for v in _spread(median, params["pickup_repeats"] * len(params["idle_s"]))]
    return charts.pickup_dots(pd.DataFrame(rows))


def _09(chart: str):
    """Notebook 09's matrix rebuilt from its figures (one row per backend and setting)."""
    from helpers.charts import which_setup as charts

    f = _figures("09-which-setup")
    rows = []
    for b in f["backends"]:
        row = {"backend": b, "label": f[f"{b}_label"], "kill_requested": f[f"{b}_requested_under_kills"],
               "kill_lost": f[f"{b}_lost_on_kill"], "kill_duplicated": f[f"{b}_duplicated_on_kill"],
               "recovery_recovery_s": f[f"{b}_recovery_s"], "recovery_bound_s": f[f"{b}_recovery_bound_s"],
               "redelivery_after_s": f[f"{b}_redelivery_after_s"]}
        for name in ("inprocess", "in_request", "in_request_stopped"):
            low, high = f[f"{b}_enqueue_{name}_ci_us"]
            row.update({f"enqueue_{name}_us": f[f"{b}_enqueue_{name}_us"], f"enqueue_{name}_ci_low_us": low,
                        f"enqueue_{name}_ci_high_us": high})
        rows.append(row)
    table = pd.DataFrame(rows).set_index("backend")
    if chart == "drain":
        key = {1: "drain_per_s", 2: "drain_2_workers_per_s", 4: "drain_4_workers_per_s"}
        drains = pd.DataFrame([{"backend": b, "workers": n, "drain_per_s": f.get(f"{b}_{k}")}
                               for b in f["backends"] for n, k in key.items()])
        return charts.drain(drains, table)
    return charts.enqueue_cost(table) if chart == "enqueue" else charts.kills_and_recovery(table)


def _00():
    from helpers.charts.index import ratio_chart
    from helpers.runs import compare

    summary = compare.load_summary(compare.REFERENCE)
    table = compare.compare(summary, summary)
    table = table.assign(ratio=np.exp(np.linspace(-0.4, 0.4, len(table)))).head(40)
    return ratio_chart(table)


def _02_latency():
    return ref._02("fig01", model_points=2)  # the M/D/c model is simulated: two rates keep it to seconds


CHARTS = {
    **{name: draw for name, draw in ref.CHARTS.items() if name != "02-under-load-fig01"},
    "02-under-load-fig01": _02_latency,
    "00-index-ratios": _00,
    "01-blocking-vs-deferred-fig01": _01,
    **{f"03-the-work-still-happens-fig0{k}": partial(_03, chart) for k, chart in enumerate(
        ("response-vs-completion", "timeline", "queue-depth", "pickup", "workers", "djtasks-backends"), 1)},
    **{f"04-what-the-user-sees-fig0{k}": partial(_04, chart) for k, chart in enumerate(("ttfb", "inp", "feedback"), 1)},
    "05-faults-fig02": _05,
    **{f"06-scale-out-fig0{k}": partial(_06, chart) for k, chart in enumerate(
        ("view", "pickup", "drain", "contention", "cpu"), 1)},
    "07-which-queue-fig03": _07_pickup,
    **{f"09-which-setup-{chart}": partial(_09, chart) for chart in ("enqueue", "drain", "kills")},
}


@pytest.mark.parametrize("name", sorted(CHARTS))
def test_every_chart_reads_at_a_glance(name):
    fig = CHARTS[name]()
    try:
        assert layout_faults(fig) == []
    finally:
        plt.close(fig)


def test_the_check_finds_text_over_text_outside_the_figure_and_a_covered_curve():
    """The check fails on each fault it names: a label over a label, a title past the edge, a legend over points,
    a number in scientific notation, a code name, an axis without a label."""
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 0.5, 1], [0, 0.5, 1], "o-", label="a curve")
    ax.legend(loc="center")
    ax.text(0.5, 0.2, "one label", transform=ax.transAxes)
    ax.text(0.52, 0.2, "another label", transform=ax.transAxes)
    ax.set_title("a title far too long to fit inside a figure four inches wide, even laid out")
    ax.set_xlabel("time")
    ax.set_xticks([0, 1], ["1.19e+03", "deferred_gunicorn"])
    faults = " | ".join(layout_faults(fig))
    plt.close(fig)
    for expected in ("'one label' over", "outside the figure", "legend covers", "a number for machines",
                     "'deferred_gunicorn' is a code name", "y axis has no label"):
        assert expected in faults
