"""Rerunning experiments headlessly: `python -m helpers run NOTEBOOK... [-p NAME VALUE]...` (and `make run`).

papermill executes each notebook with the parameters given (full mode unless `-p quick True`) into one run
folder under data/runs/, which then holds: the executed notebooks, an HTML export of each, every chart as PNG
and SVG (figures/), each notebook's own experiment folder (experiments/, with its per-request records) and
summary.json: the key figures and verdict of every notebook with the run's metadata, which notebook 00 compares
with data/reference/. The one-screen summary lists every verdict line; the command fails when a claim failed.
"""

from __future__ import annotations

import ast
import base64
import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import papermill
from nbconvert import HTMLExporter
from tqdm.auto import tqdm
from traitlets.config import Config

from helpers import runs

KERNEL = "tasks-lab"
# The kernel manager gives the kernel CurveZMQ keys when its kernelspec declares it can use them (ipykernel's does):
# its loopback sockets are encrypted, and it no longer warns that it runs over TCP without encryption.
KERNEL_CONFIG = Config({"KernelManager": {"transport_encryption": "auto"}})
FIGURE_TYPES = {"image/png": ("png", True), "image/svg+xml": ("svg", False)}  # (suffix, base64-encoded)


def parse_value(text: str):
    """`-p requests 50` gives 50, `-p quick True` gives True, anything else stays a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def declared_parameters(notebook: Path) -> set[str]:
    return set(papermill.inspect_notebook(str(notebook)))


@contextlib.contextmanager
def kernel_environment(experiments_dir: Path) -> Iterator[None]:
    """For the rerun's length, the environment its kernels inherit: each notebook's run folder lands in
    `experiments_dir`, a PostgreSQL lab may open the way down from the lab's runs area, and an IPython profile
    renders every inline figure as PNG and SVG, so both can be saved. The profile's folder is removed after."""
    with tempfile.TemporaryDirectory(prefix="tasks-lab-ipython-") as ipython_dir:
        profile = Path(ipython_dir) / "profile_default"
        profile.mkdir()
        (profile / "ipython_kernel_config.py").write_text("c.InlineBackend.figure_formats = {'png', 'svg'}\n")
        values = {"LAB_RUNS_AREA": str(runs.runs_area()), "LAB_RUNS_DIR": str(experiments_dir),
                  "IPYTHONDIR": ipython_dir}
        before = {name: os.environ.get(name) for name in values}
        os.environ.update(values)
        try:
            yield
        finally:
            for name, value in before.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def save_figures(executed: Path, figures_dir: Path) -> list[Path]:
    nb = nbformat.read(executed, as_version=4)
    saved, number = [], 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if not any(kind in data for kind in FIGURE_TYPES):
                continue
            number += 1
            for kind, (suffix, encoded) in FIGURE_TYPES.items():
                if kind in data:
                    path = figures_dir / f"{executed.stem}-fig{number:02d}.{suffix}"
                    content = data[kind]
                    path.write_bytes(base64.b64decode(content) if encoded else "".join(content).encode())
                    saved.append(path)
    return saved


def export_html(executed: Path) -> Path:
    body, _ = HTMLExporter().from_filename(str(executed))
    path = executed.with_suffix(".html")
    path.write_text(body)
    return path


def experiment_figures(experiments_dir: Path, notebook: Path) -> dict:
    """The figures and verdict (claim: held) a notebook wrote into its own run.json (its experiment folder under
    experiments/)."""
    stem = notebook.stem
    for folder in sorted(experiments_dir.glob(f"*-{stem}")):
        if not (folder / "run.json").exists():
            continue
        meta = runs.read_metadata(folder)
        return {"figures": meta.get("figures", {}), "parameters": meta.get("parameters", {}),
                "verdict": meta.get("verdict", {}), "experiment_dir": str(folder.relative_to(experiments_dir.parent))}
    return {}


def failed_claims(summary: dict) -> list[str]:
    """Every claim a notebook of the run checked and found false, as "<notebook>: <claim>"."""
    return [f"{name}: {claim}" for name, entry in summary["notebooks"].items()
            for claim, held in entry.get("verdict", {}).items() if not held]


def succeeded(summary: dict) -> bool:
    """The run's outcome, the command's exit status: every notebook ran to its end and every claim held."""
    return all(entry["status"] == "ok" for entry in summary["notebooks"].values()) and not failed_claims(summary)


def rerun(notebooks: list[Path], parameters: dict[str, object] | None = None, quick: bool = False) -> Path:
    parameters = {"quick": quick, **(parameters or {})}
    declared = {nb: declared_parameters(nb) for nb in notebooks}
    unknown = set(parameters) - set().union(*declared.values())
    if unknown:
        raise SystemExit(f"no notebook among those chosen has the parameter(s) {', '.join(sorted(unknown))}")
    run_dir = runs.new_run_dir("rerun")
    experiments_dir = run_dir / "experiments"
    figures_dir = run_dir / "figures"
    experiments_dir.mkdir()
    figures_dir.mkdir()
    summary = {"started_at": time.time(), "environment": runs.environment(), "notebooks": {}}
    with kernel_environment(experiments_dir):
        for notebook in tqdm(notebooks, desc="notebooks", unit="nb"):
            given = {k: v for k, v in parameters.items() if k in declared[notebook]}
            executed = run_dir / notebook.name
            started = time.monotonic()
            entry = {"parameters_given": given, "status": "ok"}
            try:
                papermill.execute_notebook(str(notebook), str(executed), parameters=given, kernel_name=KERNEL,
                                           cwd=str(notebook.parent), progress_bar=True, config=KERNEL_CONFIG)
            except papermill.PapermillExecutionError as exc:
                entry.update(status="failed", error=f"{exc.ename}: {exc.evalue}")
            entry["seconds"] = round(time.monotonic() - started, 1)
            if executed.exists():
                entry["html"] = export_html(executed).name
                entry["figures_saved"] = [p.name for p in save_figures(executed, figures_dir)]
            entry.update(experiment_figures(experiments_dir, notebook))
            summary["notebooks"][notebook.stem] = entry
            (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    summary["finished_at"] = time.time()
    summary["claims_failed"] = failed_claims(summary)
    summary["succeeded"] = succeeded(summary)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print_summary(run_dir, summary)
    return run_dir


def print_summary(run_dir: Path, summary: dict) -> None:
    """One screen: each notebook's status and every verdict line it printed, then the outcome. The key figures
    are in summary.json (notebook 00 compares them with the reference)."""
    print(f"\nrun folder: {run_dir}")
    for name, entry in summary["notebooks"].items():
        verdict = entry.get("verdict", {})
        held = sum(verdict.values())
        print(f"  {name}: {entry['status']} in {entry['seconds']} s, {held} of {len(verdict)} claims PASS, "
              f"{len(entry.get('figures', {}))} figures")
        for claim, ok in verdict.items():
            print(f"      {'PASS' if ok else 'FAIL'}  {claim}")
        if entry["status"] != "ok":
            print(f"      error: {entry.get('error')}")
    failed = failed_claims(summary)
    not_ok = [name for name, entry in summary["notebooks"].items() if entry["status"] != "ok"]
    if failed or not_ok:
        print(f"FAILED: {len(failed)} claim(s) failed, {len(not_ok)} notebook(s) did not finish")
    else:
        print(f"every claim held ({sum(len(e.get('verdict', {})) for e in summary['notebooks'].values())} claims)")
