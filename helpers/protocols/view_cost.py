"""View cost: what the enqueue adds to a request. The deferred email view against a baseline view that does all but
the enqueue (`validate`: the same form parsed and validated) or nothing (`noop`), every lab in turn through the
timing client, optionally cross-checked with wrk at one connection; then how many of the emails the 202s promised
reached each lab's SMTP server, and how many were lost or duplicated, message by message (a shortfall is a result,
not an error)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from helpers.instruments import wrk
from helpers.instruments.client import time_requests
from helpers.instruments.endpoints import ENDPOINTS, request_spec
from helpers.protocols.messages import new_tag, per_message, recipient, wait_for_copies
from helpers.protocols.turns import interleaved, turn_order
from helpers.stack import Lab
from helpers.stack.processes import LOOPBACK

DEFERRED = "deferred"
OK_STATUS = {"noop": 200, "validate": 200, DEFERRED: 202}


@dataclass
class ViewCost:
    timings: pd.DataFrame  # one row per request (warm-ups flagged), with backend and turn
    wrk: pd.DataFrame  # one row per wrk run: backend, endpoint, turn, p50_ms, rps, errors (empty without wrk)
    deliveries: pd.DataFrame  # per backend: deferred requests sent, answered 202, emails that arrived, lost, duplicated


def specs(tag: str, views: tuple[str, ...], requests: int, warmup: int, turn: int = 0) -> list:
    """Each view (an endpoint of helpers.instruments.endpoints), each POST to its own recipient (turn's too)."""
    return [request_spec(view, requests, warmup=warmup,
                         form={"to": recipient(tag, f"{view}{turn}")} if ENDPOINTS[view][1] == "POST" else None)
            for view in views]


def measure(labs: dict[str, Lab], baseline: str, requests: int, turns: int = 2, warmup: int = 5,
            wrk_s: float = 0.0, timeout_s: float = 60.0) -> ViewCost:
    """`requests` per view and lab over `turns` (labs A B, then B A), the first turn followed by wrk at one
    connection on both views for `wrk_s` each (whole seconds; thousands of emails per second of it for the worker to
    send afterwards: once is enough); then each lab's deliveries, and every queue drained."""
    tag, views = new_tag("view"), (baseline, DEFERRED)
    per_turn = max(1, requests // turns)
    frames, wrk_rows = [], []
    for turn, backend, lab in interleaved(labs, turns):
        timings = time_requests(LOOPBACK, lab.web_port, specs(tag, views, per_turn, warmup, turn), include_warmup=True)
        frames.append(timings.assign(backend=backend, turn=turn))
        if wrk_s >= 1 and turn == 0:  # wrk counts whole seconds; every deferred request of its is an email to send
            for view in turn_order(dict.fromkeys(views), turn):
                path, method, _ = ENDPOINTS[view]
                measured = wrk.run(lab.http.url(path), connections=1, duration_s=wrk_s, threads=1, method=method,
                                   body=f"to=wrk-{backend}%40example.test" if method == "POST" else None)
                wrk_rows.append({"backend": backend, "endpoint": view, "turn": turn, **measured})
    timings = pd.concat(frames, ignore_index=True)
    rows = []
    for backend, lab in labs.items():
        own = timings[(timings["backend"] == backend) & (timings["label"] == DEFERRED)]
        row = {"backend": backend, "requested": len(own), "accepted": int((own["status"] == 202).sum()),
               "emails_arrived": 0, "lost": 0, "duplicated": 0}
        for turn, in_turn in own.groupby("turn"):  # each turn's recipients are its own
            prefix = f"{tag}-{DEFERRED}{turn}-"
            accepted = in_turn.loc[in_turn["status"] == 202, "i"]
            row["emails_arrived"] += wait_for_copies(lab, prefix, len(accepted), timeout_s)
            counted = per_message(accepted, lab.mail.copies_by_number(prefix))
            row["lost"] += counted["lost"]
            row["duplicated"] += counted["duplicated"]
        rows.append(row)
    for lab in labs.values():  # wrk's emails too, before anything else is timed
        lab.wait_until_drained(timeout=600)
    return ViewCost(timings, pd.DataFrame(wrk_rows), pd.DataFrame(rows).set_index("backend"))


def summary(view: ViewCost, baseline: str) -> pd.DataFrame:
    """Per backend: p50 of each view through the client (answered as it should, warm-ups left out) and wrk (median
    over turns), the enqueue's cost (deferred - baseline, µs) and the ratio deferred / baseline."""
    ok = {baseline: OK_STATUS[baseline], DEFERRED: OK_STATUS[DEFERRED]}
    measured = view.timings[~view.timings["warmup"]]
    measured = measured[measured["status"] == measured["label"].map(ok)]
    client = measured.groupby(["backend", "label"])["total_ms"].agg(["median", "size"]).unstack("label")
    rows = []
    for backend in view.deliveries.index:
        row = {"backend": backend}
        for label in ok:
            row[f"{label}_p50_ms"] = client.loc[backend, ("median", label)] if backend in client.index else np.nan
            row[f"{label}_n"] = int(client.loc[backend, ("size", label)]) if backend in client.index else 0
        if len(view.wrk):
            own = view.wrk[view.wrk["backend"] == backend].groupby("endpoint")["p50_ms"].median()
            row.update({f"wrk_{label}_p50_ms": own.get(label, np.nan) for label in ok})
        rows.append(row)
    frame = pd.DataFrame(rows).set_index("backend")
    frame["enqueue_cost_us"] = (frame["deferred_p50_ms"] - frame[f"{baseline}_p50_ms"]) * 1e3
    frame["view_ratio"] = frame["deferred_p50_ms"] / frame[f"{baseline}_p50_ms"]
    if "wrk_deferred_p50_ms" in frame:
        frame["wrk_enqueue_cost_us"] = (frame["wrk_deferred_p50_ms"] - frame[f"wrk_{baseline}_p50_ms"]) * 1e3
        frame["wrk_view_ratio"] = frame["wrk_deferred_p50_ms"] / frame[f"wrk_{baseline}_p50_ms"]
    return frame
