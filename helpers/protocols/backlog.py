"""A bounded backlog under overload: open-loop load on the deferred view faster than the workers drain, the web
server restarted with LAB_MAX_BACKLOG (0: unbounded); the queue's depth over time, what was shed (503 and its
Retry-After), and every accepted email accounted for message by message once the lab settled."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pandas as pd

from helpers.instruments.endpoints import load_spec
from helpers.instruments.loadgen import run_load
from helpers.instruments.queue_probe import QueueDepthSampler
from helpers.protocols.messages import account, new_tag, received_by_request, recipient
from helpers.protocols.settle import LATE_CHECK_S, settle
from helpers.stack import Lab


def probe_shedding(lab: Lab, tag: str, bound: int, done: threading.Event) -> dict:
    """While an overload runs: once the queue holds `bound` tasks, requests of our own until one is shed, for its
    Retry-After header (the load generator keeps status codes only). Returns the probes sent and the header's
    seconds (0: a 503 without a valid header, None: no 503 came)."""
    found: dict = {"probes": 0, "retry_after_s": None}
    with lab.queue.depth_reader() as depth:
        while found["retry_after_s"] is None and not done.is_set():
            if depth() < bound:
                done.wait(0.01)
                continue
            response = lab.http.post("/email/deferred/", {"to": recipient(tag, "probe", found["probes"])})
            found["probes"] += 1
            if response.status == 503:
                header = response.getheader("Retry-After") or ""
                found["retry_after_s"] = int(header) if header.isdigit() else 0
    return found


def measure_backlog(lab: Lab, max_backlog: int, rate: float, duration_s: float, drain_timeout_s: float = 300.0,
                    settle_timeout_s: float = 60.0, late_check_s: float = LATE_CHECK_S
                    ) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """Open-loop load on /email/deferred/ faster than the consumer drains, with the web server restarted with
    LAB_MAX_BACKLOG = max_backlog (0: unbounded). Returns (figures, queue depth over time, request records)."""
    lab.wait_until_drained()
    if lab.config.max_backlog != max_backlog:
        lab.restart_web(max_backlog=max_backlog)
    tag = new_tag("overload")
    spec = replace(load_spec(lab, "deferred", mode="open", rate=rate, arrival="constant", connections=128,
                             duration_s=duration_s, warmup_s=0.0, timeout_s=30.0),
                   form={"to": recipient(tag, "deferred")})
    done, probe = threading.Event(), {"probes": 0, "retry_after_s": None}
    prober = threading.Thread(target=lambda: probe.update(probe_shedding(lab, tag, max_backlog, done)))
    with QueueDepthSampler(lab.queue, interval_s=0.05) as sampler:
        started = time.time()
        if max_backlog:
            prober.start()
        result = run_load(spec)
        done.set()
        if max_backlog:
            prober.join()
        load_done = time.time()
        lab.wait_until_drained(timeout=drain_timeout_s)
        drained = time.time()
    depth = sampler.frame().assign(t_s=lambda f: f["t"] - started, max_backlog=max_backlog)
    settled = settle({"lab": lab}, settle_timeout_s)["lab"]
    at_settle = received_by_request(lab, tag, "deferred")
    time.sleep(late_check_s)
    records = result.records.assign(max_backlog=max_backlog)
    counts = account(records, received_by_request(lab, tag, "deferred"), at_settle)
    ok = records[records["status"] == 202]
    shed = records[records["status"] == 503]
    figures = {"max_backlog": max_backlog, "rate": rate, "duration_s": duration_s, **counts, **settled,
               "web_workers": lab.config.web_workers, **probe,
               "max_depth": int(depth["depth"].max()) if len(depth) else 0,
               "accepted_p99_ms": float(ok["latency_ms"].quantile(0.99)) if len(ok) else None,
               "refused_p99_ms": float(shed["latency_ms"].quantile(0.99)) if len(shed) else None,
               "drain_after_load_s": drained - load_done}
    return figures, depth, records


def run_overload(lab: Lab, max_backlog: int, rate: float, duration_s: float, late_check_s: float = LATE_CHECK_S
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The same overload unbounded, then bounded at `max_backlog`. Returns (one row each, queue depth over time)."""
    rows, depths = [], []
    for bound in (0, max_backlog):
        figures, depth, _ = measure_backlog(lab, bound, rate, duration_s, late_check_s=late_check_s)
        rows.append(figures)
        depths.append(depth)
    return pd.DataFrame(rows), pd.concat(depths, ignore_index=True)
