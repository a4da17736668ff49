"""Time `make test` as a new user meets it: a fresh clone of the committed HEAD, set-up included; the result goes to
data/reference/timings.json, where the README's first screen reads how long the command takes.

With `busy_core`, one `yes > /dev/null` runs beside it the whole time: the suite's verdicts must hold on a busy
machine, and the README says how long that took too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time

from helpers import REPO_ROOT
from helpers.runs import report

TIMINGS = report.REFERENCE_DIR / report.TIMINGS
SCRATCH = REPO_ROOT / ".tmp"


def head_commit() -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()


def timed_fresh_clone(busy_core: bool = False) -> dict:
    """Clone HEAD into a scratch folder, run `make test` there (its output streams through), remove the clone;
    returns the record: seconds, passed, commit, cores, busy_core."""
    SCRATCH.mkdir(exist_ok=True)
    folder = tempfile.mkdtemp(prefix="time-test-", dir=SCRATCH)
    clone = os.path.join(folder, "clone")
    busy = None
    try:
        subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), clone], check=True)
        if busy_core:
            busy = subprocess.Popen(["yes"], stdout=subprocess.DEVNULL)
        began = time.monotonic()
        done = subprocess.run(["make", "test"], cwd=clone)
        seconds = time.monotonic() - began
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
        shutil.rmtree(folder, ignore_errors=True)
    return {"seconds": round(seconds), "passed": done.returncode == 0, "commit": head_commit()[:7],
            "cores": os.cpu_count(), "busy_core": busy_core,
            "how": "python -m helpers time-test" + (" --busy-core" if busy_core else "")
                   + ": make test in a fresh clone of the commit, set-up included"}


def record(entry: dict) -> None:
    """Keep `entry` in timings.json, where the report reads it: under report.TIMED_TEST, or TIMED_TEST_BUSY."""
    timings = report.timings(TIMINGS.parent)
    timings[report.TIMED_TEST_BUSY if entry["busy_core"] else report.TIMED_TEST] = entry
    TIMINGS.write_text(json.dumps(timings, indent=2) + "\n")


def main(busy_core: bool = False) -> int:
    if subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT, capture_output=True,
                      text=True, check=True).stdout.strip():
        print("time-test clones the committed HEAD: commit your changes first", flush=True)
        return 2
    entry = timed_fresh_clone(busy_core)
    print(json.dumps(entry))
    if entry["passed"]:
        record(entry)
    return 0 if entry["passed"] else 1
