"""The reference run's charts drawn again from its committed data (data/reference/full-run/): the charts whose every
input the run committed, its point tables (notebooks 02 and 08) or its recorded figures (notebook 05's counts per
fault, notebook 07's matrix).

Why: a chart's code changes after the run; `python -m helpers.charts.reference` redraws these charts into the
reference's figures/ (then `python -m helpers report` copies the headline ones to docs/findings/), and
tests/test_charts.py checks their layout without a lab.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pandas as pd

from helpers import REPO_ROOT

FULL_RUN = REPO_ROOT / "data" / "reference" / "full-run"


@cache
def run(notebook: str) -> dict:
    """A notebook's run.json of the reference run."""
    return json.loads((FULL_RUN / f"{notebook}.run.json").read_text())


def points(notebook: str) -> pd.DataFrame:
    return pd.read_parquet(FULL_RUN / f"{notebook}.points.parquet")


def under_load():
    """Notebook 02's measurements from its point table (no request records: the charts read none)."""
    from helpers.experiments.under_load import UnderLoad

    meta, table = run("02-under-load"), points("02-under-load")
    return UnderLoad(table[table["mode"] == "open"].reset_index(drop=True),
                     table[table["mode"] == "closed"].reset_index(drop=True), pd.DataFrame(),
                     meta["figures"]["service_s"], meta["parameters"]["web_workers"])


def does_async_fix_it():
    """Notebook 08's measurements from its point table and setup (no records or faults: the charts read none)."""
    from helpers.experiments.does_async_fix_it import Measured, Setup

    meta = run("08-does-async-fix-it")
    setup = Setup(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta["setup"].items()})
    return Measured(setup, points("08-does-async-fix-it"), pd.DataFrame(), pd.DataFrame(), meta["figures"]["cores"])


# notebook 07's matrix column -> the figure key_figures() records it as, <backend>_<figure>
MATRIX_FIGURES = {
    "enqueue_cost_us": "enqueue_cost_us", "wrk_enqueue_cost_us": "wrk_enqueue_cost_us",
    "drain_per_s": "drain_per_s", "has_workers": "has_workers", "kill_kills": "kills",
    "kill_requested": "requested_under_kills", "kill_lost": "lost_on_kill", "kill_duplicated": "duplicated_on_kill",
    "kill_stuck": "stuck_on_kill", "servers_mb": "servers_mb", "worker_mb": "worker_mb", "web_mb": "web_mb",
    "response_p50_ms": "response_p50_ms", "response_p99_ms": "response_p99_ms", "completion_p50_ms": "e2e_p50_ms",
    "completion_p99_ms": "e2e_p99_ms", "accepted": "e2e_accepted"}


def which_queue_table() -> pd.DataFrame:
    """Notebook 07's matrix, the columns its charts read, from the figures it recorded (one row per backend)."""
    figures = run("07-which-queue")["figures"]
    rows = {b: {column: figures.get(f"{b}_{name}") for column, name in MATRIX_FIGURES.items()}
            for b in figures["backends"]}
    table = pd.DataFrame.from_dict(rows, orient="index")
    numeric = [c for c in table if c != "has_workers"]
    table[numeric] = table[numeric].apply(pd.to_numeric)
    return table.rename_axis("backend")


def faults_table() -> pd.DataFrame:
    """Notebook 05's table, the columns its first chart reads, from the per backend, design and fault counts it
    recorded; the web restart's failed requests are recorded as one total, put on its first row."""
    figures = run("05-faults")["figures"]
    rows = [{"backend": key.split("/")[0], "design": key.split("/")[1], "fault": key.split("/")[2],
             **counts, "client_errors": 0} for key, counts in figures["by_fault"].items()]
    table = pd.DataFrame(rows)
    order = {fault: k for k, fault in enumerate(figures["faults"])}
    table = table.sort_values("fault", key=lambda column: column.map(order), kind="stable").reset_index(drop=True)
    restart = table.index[table["fault"] == "web_restart"]
    if len(restart):
        table.loc[restart[0], "client_errors"] = figures["web_restart_failed_requests"]
    return table


def _05(chart: str):
    from helpers.charts import faults as charts

    return {"fig01": lambda: charts.lost_by_fault(faults_table())}[chart]()


def _02(chart: str, model_points: int | None = None):
    """Notebook 02's chart; `model_points`: where the M/D/c model is simulated (the run's own number by default,
    about a second each)."""
    from helpers.charts import under_load as charts

    measured = under_load()
    model_points = model_points or run("02-under-load")["parameters"]["model_points"]
    return {"fig01": lambda: charts.latency_vs_rate(measured.open_summary, measured.model(model_points),
                                                    measured.capacity),
            "fig02": lambda: charts.throughput_and_errors(measured.open_summary, measured.capacity),
            "fig03": lambda: charts.cpu_by_point(measured.open_summary),
            "fig04": lambda: charts.closed_loop_chart(measured.closed_summary, measured.capacity)}[chart]()


def _07(chart: str):
    from helpers.charts import which_queue as charts

    table = which_queue_table()
    return {"fig01": lambda: charts.view_cost(table), "fig02": lambda: charts.end_to_end(table),
            "fig04": lambda: charts.memory(table), "fig05": lambda: charts.drain(table),
            "fig06": lambda: charts.kills(table)}[chart]()


def _08(chart: str):
    from helpers.charts import does_async_fix_it as charts

    measured = does_async_fix_it()
    return {"fig01": charts.latency_vs_rate, "fig02": charts.throughput_vs_rate,
            "fig03": charts.model_vs_measured}[chart](measured)


# "<notebook>-figNN" (its name under figures/) -> a function drawing it from the committed data
CHARTS: dict[str, Callable] = {
    **{f"02-under-load-{c}": (lambda c=c: _02(c)) for c in ("fig01", "fig02", "fig03", "fig04")},
    "05-faults-fig01": lambda: _05("fig01"),
    **{f"07-which-queue-{c}": (lambda c=c: _07(c)) for c in ("fig01", "fig02", "fig04", "fig05", "fig06")},
    **{f"08-does-async-fix-it-{c}": (lambda c=c: _08(c)) for c in ("fig01", "fig02", "fig03")},
}


def redraw(names=None, folder: Path = FULL_RUN / "figures") -> list[Path]:
    """Draw the named charts (all of CHARTS by default) into `folder` as the notebooks save them."""
    from helpers.charts.common import save

    return [save(CHARTS[name](), folder / f"{name}.png") for name in (names or CHARTS)]


if __name__ == "__main__":
    for path in redraw(sys.argv[1:] or None, Path(FULL_RUN / "figures")):
        print(path.relative_to(REPO_ROOT))
