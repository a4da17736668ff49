"""Comparing a rerun with the committed reference (data/reference/summary.json): figure by figure, as ratios
measured on each machine, never as a pass/fail on absolute numbers from another machine."""

from __future__ import annotations

import json
import math
from pathlib import Path

import nbformat
import pandas as pd

from helpers import REPO_ROOT
from helpers.runs import notebooks
from helpers.runs.folders import runs_root

REFERENCE = REPO_ROOT / "data" / "reference" / "summary.json"
BAND = (0.8, 1.25)  # a ratio inside it reads as "about the same as the reference" (symmetric on a log scale)


def load_summary(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def figures_table(summary: dict) -> pd.DataFrame:
    rows = []
    for notebook, entry in summary.get("notebooks", {}).items():
        for figure, value in entry.get("figures", {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                rows.append({"notebook": notebook, "figure": figure, "value": float(value)})
    return pd.DataFrame(rows, columns=["notebook", "figure", "value"])


def both(reference: dict, latest: dict) -> pd.DataFrame:
    """Every numeric figure present in both summaries: reference and latest."""
    table = figures_table(reference).merge(figures_table(latest), on=["notebook", "figure"],
                                           suffixes=("_reference", "_latest"))
    return table.rename(columns={"value_reference": "reference", "value_latest": "latest"})


def compare(reference: dict, latest: dict) -> pd.DataFrame:
    """One row per numeric figure present in both with a reference other than zero: reference, latest, and
    latest/reference. (A count the reference found zero, such as emails lost, has no ratio: see `zeros`.)"""
    table = both(reference, latest)
    table = table[table["reference"] != 0].reset_index(drop=True)
    return table.assign(ratio=table["latest"] / table["reference"])


def zeros(reference: dict, latest: dict) -> pd.DataFrame:
    """The figures the reference found zero, with what the compared run found."""
    table = both(reference, latest)
    return table[table["reference"] == 0].reset_index(drop=True)


def notebook_index() -> pd.DataFrame:
    """Every numbered notebook with the question its first heading asks."""
    rows = []
    for path in notebooks.notebooks():
        nb = nbformat.read(path, as_version=4)
        heading = next((c.source.splitlines()[0].lstrip("# ") for c in nb.cells if c.cell_type == "markdown"), "")
        rows.append({"notebook": path.name, "question": heading})
    return pd.DataFrame(rows)


def latest_rerun_summary() -> Path | None:
    """The newest rerun's summary.json. A rerun folder (`<time>-rerun`) holds summary.json and no run.json, so
    folders.list_runs, which lists experiment folders by their run.json, does not see it."""
    found = sorted(runs_root().glob("*-rerun*/summary.json"))
    return found[-1] if found else None


def summary_to_compare(path: str | Path | None = None, quick: bool = False) -> Path:
    """The summary.json to compare: the one named, else the latest rerun's, else a rerun of notebook 01 made now
    (quick when asked), so the comparison always shows a measurement of this machine."""
    from helpers.runs import rerun

    if path:
        return Path(path)
    latest = latest_rerun_summary()
    if latest is not None:
        return latest
    first = next(p for p in notebooks.notebooks() if p.name.startswith("01-"))
    return rerun.rerun([first], quick=quick) / "summary.json"


def comparison_figures(reference: dict, latest: dict, table: pd.DataFrame) -> dict:
    """What notebook 00 records and checks: how many figures were compared, how many sit inside BAND, the spread
    of the ratios, and whether each summary is complete (every notebook with figures, every run finished)."""
    ratios = table["ratio"]
    low, high = BAND
    return {
        "figures_compared": len(table),
        "notebooks_compared": int(table["notebook"].nunique()),
        "ratios_finite": int(ratios.notna().sum()),
        "ratios_in_band": int(ratios.between(low, high).sum()),
        "ratio_median": float(ratios.median()) if len(table) else None,
        "ratio_min": float(ratios.min()) if len(table) else None,
        "ratio_max": float(ratios.max()) if len(table) else None,
        "zero_in_reference": len(zeros(reference, latest)),
        "zero_in_reference_nonzero_now": int((zeros(reference, latest)["latest"] != 0).sum()),
        "reference_notebooks_without_figures": sorted(
            name for name, entry in reference.get("notebooks", {}).items() if not entry.get("figures")),
        "compared_notebooks_not_ok": sorted(
            name for name, entry in latest.get("notebooks", {}).items() if entry.get("status") != "ok"),
    }
