"""One way to run an instrument in its own process: the parent sends a plan as JSON on stdin, the child (`python
-m <module>`) answers with its rows as one JSON line, the last on stdout. The client, the enqueuer and the
browser probe run this way, away from the notebook kernel and the servers they measure.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from helpers.stack.processes import DIE_WITH_PARENT

if TYPE_CHECKING:  # pandas only in the parent: a child process starts 0.3 s sooner without it
    import pandas as pd


def run_plan(module: str, plan: dict, what: str, env: dict[str, str] | None = None,
             timeout: float | None = None) -> pd.DataFrame:
    """Run `module` with `plan`; its rows as a frame. The child dies with this process (parent-death signal)."""
    done = subprocess.run([sys.executable, "-m", module], input=json.dumps(plan), env=env, capture_output=True,
                          text=True, timeout=timeout, check=False, preexec_fn=DIE_WITH_PARENT)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    import pandas as pd

    return pd.DataFrame(json.loads(done.stdout.strip().splitlines()[-1]))


def serve_plan(run: Callable[[dict], list[dict]]) -> None:
    """The child's side: read the plan, run it, print the rows."""
    rows = run(json.load(sys.stdin))
    sys.stdout.write(json.dumps(rows, default=str) + "\n")
