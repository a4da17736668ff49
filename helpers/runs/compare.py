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

REFERENCE = REPO_ROOT / "data" / "reference" / "summary.json"


def load_summary(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def figures_table(summary: dict) -> pd.DataFrame:
    rows = []
    for notebook, entry in summary.get("notebooks", {}).items():
        for figure, value in entry.get("figures", {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                rows.append({"notebook": notebook, "figure": figure, "value": float(value)})
    return pd.DataFrame(rows, columns=["notebook", "figure", "value"])


def compare(reference: dict, latest: dict) -> pd.DataFrame:
    """One row per numeric figure present in both: reference, latest, and latest/reference."""
    table = figures_table(reference).merge(figures_table(latest), on=["notebook", "figure"],
                                           suffixes=("_reference", "_latest"))
    table["ratio"] = table["value_latest"] / table["value_reference"].where(table["value_reference"] != 0)
    return table.rename(columns={"value_reference": "reference", "value_latest": "latest"})


def notebook_index() -> pd.DataFrame:
    """Every numbered notebook with the question its first heading asks."""
    rows = []
    for path in notebooks.notebooks():
        nb = nbformat.read(path, as_version=4)
        heading = next((c.source.splitlines()[0].lstrip("# ") for c in nb.cells if c.cell_type == "markdown"), "")
        rows.append({"notebook": path.name, "question": heading})
    return pd.DataFrame(rows)
