"""Transactions: what each backend's task does when the request's transaction rolls back, is held open, or enqueues
with transaction.on_commit (helpers.instruments.queue_semantics.transaction_outcomes), every lab at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pandas as pd

from helpers.instruments import queue_semantics
from helpers.runs import rounded
from helpers.stack import Lab

OUTCOMES = ("ran_after_rollback", "ran_before_commit", "ran_after_commit", "on_commit_ran_before_commit", "never_ran")


def outcomes(labs: dict[str, Lab], trials: int, **options) -> pd.DataFrame:
    """Per backend: queue_semantics.transaction_outcomes's counts over `trials` (`options`: its hold_ms, settle_s),
    every lab at once (requests and reads only, no process started), beside what the backend declares
    (enqueue_in_transaction)."""
    with ThreadPoolExecutor(len(labs)) as pool:
        found = dict(zip(labs, pool.map(lambda lab: queue_semantics.transaction_outcomes(lab, trials, **options),
                                        labs.values()), strict=True))
    return pd.DataFrame([{"backend": b, "trials": trials, "enqueue_in_transaction": lab.queue.enqueue_in_transaction,
                          **{k: found[b][k] for k in OUTCOMES}}
                         for b, lab in labs.items()]).set_index("backend")


def key_figures(b: str, row) -> dict:
    """One backend's transaction figures, <b>_<what>, from a matrix row holding outcomes()'s columns."""
    return {f"{b}_runs_after_rollback": rounded(row["ran_after_rollback"], 0),
            f"{b}_runs_before_commit": rounded(row["ran_before_commit"], 0),
            f"{b}_runs_after_commit": rounded(row["ran_after_commit"], 0),
            f"{b}_tx_never_ran": rounded(row["never_ran"], 0),
            f"{b}_on_commit_ran_before_commit": rounded(row["on_commit_ran_before_commit"], 0)}
