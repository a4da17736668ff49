"""Each notebook's claims as a function of its recorded figures: `verdict(figures, quick=False)` in its experiments
module, printed by the notebook's last cell (the lines nbval compares) and called again by the report.

Quick mode runs beside other notebooks on two shared cores. A claim whose margin that load can cross is either held
to a wider quick-mode bound its text states ("... (quick mode: >= 0.5x)"), or checked in full mode only: its text
ends with FULL_MODE_ONLY and in quick mode verdict() gives None for it, printed as NOT_CHECKED and left out of the
run.json's `verdict` (listed under `not_checked` instead).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from helpers.runs.folders import write_metadata

FULL_MODE_ONLY = " (full mode)"
NOT_CHECKED = "not checked in quick mode"
# notebook -> the experiments module whose verdict() holds its claims
MODULES = {
    "01-blocking-vs-deferred": "blocking_vs_deferred",
    "02-under-load": "under_load",
    "03-the-work-still-happens": "work_still_happens",
    "04-what-the-user-sees": "what_the_user_sees",
    "05-faults": "faults",
    "06-scale-out": "scale_out",
    "07-which-queue": "which_queue",
    "08-does-async-fix-it": "does_async_fix_it",
    "09-which-setup": "which_setup",
}
# Notebooks whose verdict() has no full-mode run in data/reference/ yet: judged in their own tests and under nbval, and
# moved into MODULES once a run of theirs whose every claim held is promoted.
AWAITING_REFERENCE: dict[str, str] = {}


def module(notebook: str) -> ModuleType:
    return importlib.import_module(f"helpers.experiments.{MODULES[notebook]}")


def claim(notebook: str, key: str) -> str:
    """The text of one claim of a notebook, by its stable key in the module's CLAIMS."""
    return module(notebook).CLAIMS[key]


def claims(texts: dict[str, str], held: dict[str, bool | None], quick: bool = False) -> dict[str, bool | None]:
    """{claim text: held} from a module's CLAIMS (key -> text) and what its verdict found (key -> held); a full-mode
    claim is None in quick mode. Fails when the keys differ: every claim is checked, and only those."""
    if list(texts) != list(held):
        raise ValueError(f"claims and checks differ: {sorted(set(texts) ^ set(held))}")
    return {text: None if quick and text.endswith(FULL_MODE_ONLY) else bool(held[key]) for key, text in texts.items()}


def judge(notebook: str, figures: dict, quick: bool = False) -> dict[str, bool | None]:
    return module(notebook).verdict(figures, quick=quick)


def verdict(run_dir: Path, checks: dict[str, bool | None]) -> bool:
    """Print each claim with PASS, FAIL or NOT_CHECKED (the lines nbval compares) and record the checked ones in
    run.json; True when every checked claim held.

    The rule for quick mode, one for every notebook: a claim whose margin two notebooks sharing two cores could
    cross either states its wider quick-mode bound in its text, or ends with FULL_MODE_ONLY and arrives here as None
    in quick mode: printed as NOT_CHECKED, recorded under `not_checked`, never in `verdict`."""
    held = {text: bool(ok) for text, ok in checks.items() if ok is not None}
    for text, ok in checks.items():
        print(f"{text}: {NOT_CHECKED if ok is None else 'PASS' if ok else 'FAIL'}")
    write_metadata(run_dir, {"verdict": held, "not_checked": [text for text, ok in checks.items() if ok is None]})
    return all(held.values())
