"""Run folders and their metadata (folders), the benchmark harness (bench), papermill reruns (rerun), comparison
with the reference (compare), the README's findings and the HTML report (report), notebook hygiene (notebooks),
quick mode (params) and the notebooks' claims (verdicts)."""

from helpers.runs.folders import (
    environment,
    list_runs,
    load_table,
    new_run_dir,
    plain,
    read_metadata,
    record,
    rounded,
    runs_area,
    runs_root,
    save_table,
    write_metadata,
)
from helpers.runs.verdicts import claims, verdict

__all__ = ["claims", "environment", "list_runs", "load_table", "new_run_dir", "plain", "read_metadata", "record",
           "rounded", "runs_area", "runs_root", "save_table", "verdict", "write_metadata"]
