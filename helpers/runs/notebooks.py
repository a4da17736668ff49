"""Notebooks in git stay reviewable: nbstripout removes every output, but for the verdict cell
(metadata keep_output), whose output nbval compares. nbval only compares a cell that has an execution
count, so the verdict keeps a count of 1 and every other cell none."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat

from helpers import REPO_ROOT


def notebooks() -> list[Path]:
    return sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))


def strip(paths: list[Path]) -> None:
    subprocess.run([Path(sys.executable).with_name("nbstripout"), *map(str, paths)], check=True)
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code" and cell.metadata.get("keep_output"):
                cell.execution_count = 1
        nbformat.write(nb, path)
