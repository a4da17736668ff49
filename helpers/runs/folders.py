"""Run folders: every experiment writes into its own folder under data/runs/, with metadata that says
what was run, on what, from which commit, so a figure can always be traced back."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import psutil

from helpers import REPO_ROOT

PACKAGES = ["django", "huey", "gunicorn", "aiosmtpd", "pandas", "matplotlib", "hdrhistogram", "psutil",
            "whitenoise", "playwright"]


def runs_root() -> Path:
    return Path(os.environ.get("LAB_RUNS_DIR", REPO_ROOT / "data" / "runs"))


def runs_area() -> Path:
    """The outermost folder of the lab's own run folders: runs_root(), or, for the kernels of a rerun (whose runs
    root is its experiments/ folder, inside a private rerun folder), the runs root the rerun was made in."""
    return Path(os.environ.get("LAB_RUNS_AREA", runs_root()))


def new_run_dir(kind: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    base = runs_root() / f"{stamp}-{kind}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    path.mkdir(parents=True, mode=0o700)  # the queue is pickle: nobody else may write it
    return path


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                             timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() + ("-dirty" if dirty else "")) or None


def environment() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": psutil.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "packages": versions,
        "git_commit": git_commit(),
    }


def write_metadata(run_dir: Path, extra: dict) -> Path:
    """Merge `extra` into the folder's run.json, adding the environment the first time."""
    path = Path(run_dir) / "run.json"
    data = json.loads(path.read_text()) if path.exists() else {
        "created_at": time.time(), "environment": environment()}
    data.update(extra)
    data["updated_at"] = time.time()
    path.write_text(json.dumps(data, indent=2, default=str))
    return path


def read_metadata(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "run.json").read_text())


def save_table(run_dir: Path, name: str, frame) -> Path:
    """Per-request records and result tables as Parquet (typed, compact), one file each."""
    path = Path(run_dir) / f"{name}.parquet"
    frame.to_parquet(path, index=False)
    return path


def load_table(run_dir: Path, name: str):
    import pandas as pd

    return pd.read_parquet(Path(run_dir) / f"{name}.parquet")


def list_runs(kind: str | None = None) -> list[Path]:
    """Run folders, oldest first; `kind` filters on the name's suffix (e.g. "02-under-load")."""
    root = runs_root()
    found = sorted(p for p in root.iterdir() if p.is_dir() and (root / p.name / "run.json").exists()) \
        if root.exists() else []
    return [p for p in found if kind is None or p.name.split("-", 1)[-1].startswith(kind)]


def plain(value):
    """Figures as plain JSON: numpy and pandas scalars become numbers, NaN becomes None, keys strings."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def rounded(value, digits: int = 1) -> float | None:
    """A measured figure rounded for run.json; None for a missing one (None, NaN, pandas' NA)."""
    import pandas as pd  # the figures come from pandas tables; folders itself is imported without it

    return None if value is None or pd.isna(value) else round(float(value), digits)


def record(run_dir: Path, figures: dict, parameters: dict, **extra) -> dict:
    """The figures and parameters into the run folder's run.json (notebooks and benchmarks alike); returns the
    figures as plain JSON."""
    figures = plain(figures)
    write_metadata(run_dir, {"figures": figures, "parameters": plain(parameters), **extra})
    return figures
