"""Notebook 02, under load: where the blocking view hits its ceiling (open- and closed-loop sweeps, the M/D/c
model beside them), and `python -m helpers bench under_load_harness`, which checks the load generator against wrk."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property, partial
from math import nan
from urllib.parse import urlencode

import numpy as np
import pandas as pd

from helpers import runs
from helpers.analysis import latency, queueing
from helpers.instruments import wrk
from helpers.instruments.client import time_requests
from helpers.instruments.cpu import CpuMeter
from helpers.instruments.endpoints import ENDPOINTS, load_spec, request_spec
from helpers.instruments.loadgen import run_load
from helpers.runs.bench import benchmark
from helpers.stack import Lab
from helpers.stack.processes import LOOPBACK


def _wrk_row(figures: dict, trial: int, tool: str, connections: int) -> dict:
    return {"tool": tool, "trial": trial, "connections": connections, "rps": figures["rps"],
            "p50_ms": figures["p50_ms"], "p99_ms": figures["p99_ms"], "p50_raw_ms": nan, "in_flight": nan,
            "littles_law": figures.get("in_flight", nan),
            "cpu_us_per_request": 1e6 * figures["cpu_s"] / figures["requests"],
            "errors": figures["socket_errors"] + figures["non_2xx"]}


def _lab_row(lab: Lab, endpoint: str, connections: int, duration_s: float, tool_cpus, trial: int,
             warmup_s: float = 1.0, at_start=None) -> dict:
    """One closed-loop run of the generator, in compare_with_wrk's terms (p50 and p99 as wrk would print them)."""
    result = run_load(load_spec(lab, endpoint, mode="closed", connections=connections, duration_s=duration_s,
                                warmup_s=warmup_s, cpus=tool_cpus), at_start=at_start)
    s, measured = result.summary, result.measured
    ok = measured[measured["error"].isna()]
    as_wrk = latency.as_wrk_reports((ok["service_ms"] * 1e3).astype(int), duration_s, connections) / 1e3
    return {"tool": "lab", "trial": trial, "connections": connections, "rps": s["throughput"],
            "p50_ms": float(np.percentile(as_wrk, 50)), "p99_ms": float(np.percentile(as_wrk, 99)),
            "p50_raw_ms": s["service_p50_ms"], "in_flight": s["in_flight_mean"],
            "littles_law": s["throughput"] * as_wrk.mean() / 1e3, "littles_law_raw": s["littles_law_in_flight"],
            "cpu_us_per_request": 1e6 * result.generator_cpu_s / len(result.records),
            "errors": s["errors"] + s["non_2xx"]}


def _prepare(lab: Lab, endpoint: str, connections: int, server_cpus, tool_cpus) -> tuple[str, str, str | None]:
    """The endpoint as wrk sends it (path, method, body), the server pinned to its cores, and a discarded wrk run
    first: wrk has no warm-up of its own, and neither tool should meet a cold server."""
    path, method, form = ENDPOINTS[endpoint]
    body = urlencode({k: v.format(i=0) for k, v in form.items()}) if form else None
    if server_cpus:
        lab.processes["web"].pin(server_cpus)
    wrk.run(lab.http.url(path), connections, 2, method=method, body=body, cpus=tool_cpus)
    return path, method, body


def compare_with_wrk(lab: Lab, endpoint: str = "noop", connections: int = 16, duration_s: float = 8.0,
                     trials: int = 2, server_cpus: list[int] | None = None,
                     tool_cpus: list[int] | None = None) -> pd.DataFrame:
    """Closed loop at the same connection count, the lab's generator and wrk taking turns (A B, B A...).

    Like with like: wrk times a request from its write to the end of the response, the lab's `service` time is the
    same span; wrk prints its latencies after a coordinated-omission correction (`latency.as_wrk_reports`), so the
    lab's `p50_ms` and `p99_ms` here go through the same correction (its raw p50 is kept beside). In flight: the
    lab's from its records; for both, Little's law on the printed figures (throughput x mean latency).

    `server_cpus` and `tool_cpus` put the web server and the load tools on separate cores: on shared cores a tool's
    own CPU is taken from the server, and the comparison measures the tools' CPU cost (`cpu_us_per_request`, kept
    in every row) more than their measurement. If the generator keeps fewer requests in flight than its
    connections, wrk runs again at that concurrency ("wrk matched")."""
    path, method, body = _prepare(lab, endpoint, connections, server_cpus, tool_cpus)

    def run_wrk(trial: int, tool: str, at: int) -> dict:
        figures = wrk.run(lab.http.url(path), at, duration_s, method=method, body=body, cpus=tool_cpus)
        return _wrk_row(figures, trial, tool, at)

    def run_lab(trial: int) -> dict:
        return _lab_row(lab, endpoint, connections, duration_s, tool_cpus, trial)

    rows = []
    for trial in range(trials):
        tools = ("wrk", "lab") if trial % 2 == 0 else ("lab", "wrk")
        for tool in tools:
            rows.append(run_wrk(trial, "wrk", connections) if tool == "wrk" else run_lab(trial))
        kept = round(rows[-1 if tools[-1] == "lab" else -2]["in_flight"])
        if kept != connections:
            rows.append(run_wrk(trial, "wrk matched", max(1, kept)))
    return pd.DataFrame(rows)


def side_by_side(lab: Lab, endpoint: str = "noop", connections: int = 8, duration_s: float = 5.0, trials: int = 6,
                 server_cpus: list[int] | None = None, tool_cpus: list[int] | None = None) -> pd.DataFrame:
    """The lab's generator and wrk at the same time, `connections` each, against the same server: both meet the
    same moment of a server whose speed drifts (on this shared host it halves for seconds at a time, which no
    alternation of separate runs can cancel). A generator that turns its connections round slower than wrk gets
    a smaller share of the answers; one that times them differently reports another p50. The server must serve
    every connection alike: one worker process (with several, a keep-alive connection stays with the worker that
    accepted it, and the split follows that draw, not the tools). Rows as compare_with_wrk's (wrk's figures
    cover its whole run, the generator's its own, started together)."""
    path, method, body = _prepare(lab, endpoint, 2 * connections, server_cpus, tool_cpus)
    run_wrk = partial(wrk.run, lab.http.url(path), connections, duration_s, method=method, body=body, cpus=tool_cpus)
    rows, beside = [], []
    with ThreadPoolExecutor(max_workers=1) as pool:
        for trial in range(trials):
            rows.append(_lab_row(lab, endpoint, connections, duration_s, tool_cpus, trial, warmup_s=0.0,
                                 at_start=lambda: beside.append(pool.submit(run_wrk))))
            rows.append(_wrk_row(beside.pop().result(), trial, "wrk", connections))
    return pd.DataFrame(rows)


def harness_figures(turns: pd.DataFrame) -> dict:
    """The generator against wrk. Each trial's lab run is held against its own trial's wrk run (run at the same
    time by side_by_side, next to it by compare_with_wrk), and the ratios are the medians of those paired ratios:
    on a shared host the server's own speed drifts from one run to the next, and a pair meets the same drift.
    Throughput at the same connection count; p50 (as wrk reports it, and raw) at the concurrency the generator
    kept in flight; in flight and each tool's CPU per request, medians over the trials."""
    lab = turns[turns["tool"] == "lab"].set_index("trial")
    same = turns[turns["tool"] == "wrk"].set_index("trial")
    kept = lab["in_flight"].round().astype(int)
    matched = same.copy()
    for trial, row in turns[turns["tool"] == "wrk matched"].set_index("trial").iterrows():
        matched.loc[trial] = row
    ratio = {"rps": lab["rps"] / same["rps"], "p50": lab["p50_ms"] / matched["p50_ms"],
             "p50_raw": lab["p50_raw_ms"] / matched["p50_ms"]}
    return {
        "lab_rps": round(lab["rps"].median(), 1), "wrk_rps": round(same["rps"].median(), 1),
        "rps_ratio": round(ratio["rps"].median(), 3), "rps_ratio_min": round(ratio["rps"].min(), 3),
        "lab_p50_ms": round(lab["p50_ms"].median(), 3), "lab_p50_raw_ms": round(lab["p50_raw_ms"].median(), 3),
        "wrk_p50_ms": round(same["p50_ms"].median(), 3),
        "wrk_matched_connections": int(kept.median()), "wrk_matched_p50_ms": round(matched["p50_ms"].median(), 3),
        "p50_ratio": round(ratio["p50"].median(), 3), "p50_ratio_raw": round(ratio["p50_raw"].median(), 3),
        "lab_in_flight": round(lab["in_flight"].median(), 2),
        "lab_littles_law_in_flight": round(lab["littles_law"].median(), 2),
        "lab_littles_law_raw_error": round((lab["littles_law_raw"] / lab["in_flight"] - 1).abs().max(), 4),
        "wrk_littles_law_in_flight": round(same["littles_law"].median(), 2),
        "lab_cpu_us_per_request": round(lab["cpu_us_per_request"].median(), 1),
        "wrk_cpu_us_per_request": round(same["cpu_us_per_request"].median(), 1),
    }


@dataclass
class SweepResult:
    points: pd.DataFrame  # one row per (endpoint, rate or users, trial): summary figures and CPU
    records: pd.DataFrame  # every request, labelled with its point


def _point_row(result, meter: CpuMeter, **labels) -> dict:
    row = {**labels, **{k: v for k, v in result.summary.items() if k != "histograms"}}
    row.update(meter.usage())
    row["cpu_generator_pct"] = 100 * result.generator_cpu_s / meter.wall_s
    return row


def sweep(lab: Lab, endpoint: str, mode: str, levels, trials: int = 1, duration_s: float = 10.0,
          warmup_s: float = 2.0, max_connections: int = 512, progress=None) -> SweepResult:
    """Open loop over arrival rates, or closed loop over user counts, each point repeated `trials` times
    (trials outermost, so repeats are spread over time). The queue is drained before every point."""
    rows, records = [], []
    for trial in range(trials):
        for level in levels:
            lab.wait_until_drained()
            if mode == "open":
                spec = load_spec(lab, endpoint, mode="open", rate=float(level), arrival="poisson",
                                 connections=max_connections, duration_s=duration_s, warmup_s=warmup_s,
                                 seed=trial + 1)
            else:
                spec = load_spec(lab, endpoint, mode="closed", connections=int(level), duration_s=duration_s,
                                 warmup_s=warmup_s, seed=trial + 1)
            with CpuMeter(lab) as meter:
                result = run_load(spec)
            labels = {"endpoint": endpoint, "mode": mode, "level": level, "trial": trial}
            rows.append(_point_row(result, meter, **labels))
            records.append(result.records.assign(**labels))
            if progress is not None:
                progress.update(1)
    lab.wait_until_drained()
    return SweepResult(pd.DataFrame(rows), pd.concat(records, ignore_index=True))


def summarize_points(points: pd.DataFrame, columns=("throughput", "latency_p50_ms", "latency_p99_ms",
                                                           "service_p99_ms")) -> pd.DataFrame:
    """Median over trials per point, with a bootstrap CI over trials and the sample count."""
    out = []
    for (endpoint, level), group in points.groupby(["endpoint", "level"], sort=True):
        row = {"endpoint": endpoint, "level": level, "trials": len(group), "requests": int(group["requests"].sum()),
               "errors": int(group["errors"].sum() + group["non_2xx"].sum())}
        for column in columns:
            row[column] = float(group[column].median())
            row[f"{column}_ci_low"], row[f"{column}_ci_high"] = latency.bootstrap_ci(group[column])
        for cpu in [c for c in group.columns if c.startswith("cpu_")]:
            row[cpu] = float(group[cpu].median())
        out.append(row)
    return pd.DataFrame(out)


def service_time_s(lab: Lab, endpoint: str = "blocking", requests: int = 10) -> float:
    """The endpoint's service time S at no load: median of sequential requests (the M/D/c model's S)."""
    timings = time_requests(LOOPBACK, lab.web_port, [request_spec(endpoint, requests)])
    return float(timings["total_ms"].median()) / 1e3


@dataclass
class UnderLoad:
    """Notebook 02's measurements: the open-loop sweep of both endpoints, the closed-loop one, and S."""

    open_points: pd.DataFrame
    closed_points: pd.DataFrame
    records: pd.DataFrame
    service_s: float
    web_workers: int

    @property
    def capacity(self) -> float:
        return queueing.saturation_rate(self.service_s, self.web_workers)

    @cached_property
    def open_summary(self) -> pd.DataFrame:
        return summarize_points(self.open_points)

    @cached_property
    def closed_summary(self) -> pd.DataFrame:
        return summarize_points(self.closed_points)

    @property
    def rates(self) -> list[float]:
        return sorted(float(rate) for rate in self.open_points["level"].unique())

    def model(self, points: int = 12) -> pd.DataFrame:
        """M/D/c and M/M/c from the lowest rate to just below c/S, where both diverge (no steady state)."""
        return queueing.predict(np.linspace(self.rates[0], 0.98 * self.capacity, points), self.service_s,
                                self.web_workers)

    def littles_law(self) -> pd.DataFrame:
        """Closed loop, per user count N: throughput X, mean latency W and X * W, which Little's law says is N
        (the requests in flight), and its relative error."""
        records = self.records[(self.records["mode"] == "closed") & ~self.records["warmup"]
                               & self.records["error"].isna()]
        table = self.closed_summary[["level", "throughput"]].copy()
        table["mean_latency_ms"] = table["level"].map(records.groupby("level")["latency_ms"].mean())
        table["in_flight"] = table["throughput"] * table["mean_latency_ms"] / 1e3
        table["error"] = table["in_flight"] / table["level"] - 1
        return table


def measure_under_load(lab: Lab, rate_fractions, users, trials: int, duration_s: float, warmup_s: float,
                       progress=None) -> UnderLoad:
    """S at no load, then open-loop sweeps at fractions of c/S for both endpoints and a closed-loop sweep over
    users for the blocking one."""
    service_s = service_time_s(lab, "blocking")
    rates = [round(f * queueing.saturation_rate(service_s, lab.config.web_workers), 1) for f in rate_fractions]
    blocking = sweep(lab, "blocking", "open", rates, trials, duration_s, warmup_s, progress=progress)
    deferred = sweep(lab, "deferred", "open", rates, trials, duration_s, warmup_s, progress=progress)
    closed = sweep(lab, "blocking", "closed", users, trials, duration_s, warmup_s, progress=progress)
    return UnderLoad(pd.concat([blocking.points, deferred.points], ignore_index=True), closed.points,
                     pd.concat([blocking.records, deferred.records, closed.records], ignore_index=True),
                     service_s, lab.config.web_workers)


def _at(summary: pd.DataFrame, endpoint: str, level: float, column: str) -> float:
    """One point's median over trials; NaN where the sweep has no such point."""
    row = summary[(summary["endpoint"] == endpoint) & (summary["level"] == level)]
    return float(row[column].iloc[0]) if len(row) else float("nan")


def key_figures(measured: UnderLoad) -> dict:
    """The figures notebook 02 records and `bench under_load` prints, one for each claim the notebook makes:
    the blocking view near S at low load, its tail climbing below c/S and growing past it, its saturation
    throughput against c/S and its CPU there; the deferred view's latency at every rate and the consumer's CPU;
    the closed loop levelling off at c/S, obeying Little's law, with a shorter tail than the open loop past c/S;
    the generator's own lag."""
    summary, capacity, rates = measured.open_summary, measured.capacity, measured.rates
    saturated = summary[(summary["endpoint"] == "blocking") & (summary["level"] >= capacity)]
    deferred = summary[summary["endpoint"] == "deferred"]
    saturation = float(saturated["throughput"].max())
    lowest, highest = rates[0], rates[-1]
    below = [rate for rate in rates if rate < capacity]
    most_users = float(measured.closed_summary["level"].max())
    return {
        "service_s": round(measured.service_s, 4),
        "capacity_c_over_s": round(capacity, 2),
        "saturation_throughput": round(saturation, 2),
        "saturation_ratio": round(saturation / capacity, 3),
        "deferred_p99_ms_at_saturation": round(float(
            deferred.loc[deferred["level"].isin(saturated["level"]), "latency_p99_ms"].max()), 2),
        # the same from the request's send, without the generator's own lag: what the claim compares (a generator
        # stalled for tens of ms by a busy host makes a short run's p99 on its own)
        "deferred_service_p99_ms_at_saturation": round(float(
            deferred.loc[deferred["level"].isin(saturated["level"]), "service_p99_ms"].max()), 2),
        "rates_at_or_above_capacity": saturated["level"].tolist(),
        "blocking_p50_ms_lowest_rate": round(_at(summary, "blocking", lowest, "latency_p50_ms"), 2),
        "blocking_p99_ms_lowest_rate": round(_at(summary, "blocking", lowest, "latency_p99_ms"), 2),
        "blocking_p99_ms_below_capacity": round(_at(summary, "blocking", max(below, default=nan),
                                                    "latency_p99_ms"), 2),
        "blocking_p99_ms_highest_rate": round(_at(summary, "blocking", highest, "latency_p99_ms"), 2),
        "deferred_p50_ms_max": round(float(deferred["latency_p50_ms"].max()), 2),
        "blocking_cpu_web_pct_highest_rate": round(_at(summary, "blocking", highest, "cpu_web_pct"), 1),
        "consumer_cpu_pct_blocking_highest_rate": round(_at(summary, "blocking", highest, "cpu_consumer_pct"), 2),
        "consumer_cpu_pct_deferred_highest_rate": round(_at(summary, "deferred", highest, "cpu_consumer_pct"), 2),
        "closed_users_max": int(most_users),
        "closed_throughput_max": round(float(measured.closed_summary["throughput"].max()), 2),
        "closed_p99_ms_most_users": round(_at(measured.closed_summary, "blocking", most_users, "latency_p99_ms"), 2),
        "closed_littles_law_max_error": round(float(measured.littles_law()["error"].abs().max()), 3),
        "generator_lag_p99_ms_max": round(float(measured.open_points["lag_p99_ms"].max()), 2),
        "requests": int(measured.open_points["requests"].sum() + measured.closed_points["requests"].sum()),
    }


@benchmark("under_load")
def under_load(run_dir, smtp_delay_s: float = 0.1, web_workers: int = 4, rate_fractions=(0.25, 0.5, 0.75, 0.9,
               1.0, 1.2), users=(1, 4, 8, 16), trials: int = 3, duration_s: float = 8.0, warmup_s: float = 2.0
               ) -> dict:
    """Notebook 02's sweeps with its full-mode parameters."""
    with Lab(run_dir=run_dir, smtp_delay_s=smtp_delay_s, web_workers=web_workers) as lab:
        measured = measure_under_load(lab, rate_fractions, users, trials, duration_s, warmup_s)
    runs.save_table(run_dir, "points", pd.concat([measured.open_points, measured.closed_points]))
    return key_figures(measured)


def separate_cores() -> tuple[list[int] | None, list[int] | None]:
    """The server's cores and the load tools' core: the last core for the tools, the others for the server (None,
    None on a single core)."""
    cores = sorted(os.sched_getaffinity(0))
    return (cores[:-1], cores[-1:]) if len(cores) >= 2 else (None, None)


@benchmark("under_load_harness", aliases=("harness",))
def harness(run_dir, connections: int = 16, duration_s: float = 5.0, trials: int = 6,
            open_rate: float = 1000.0) -> dict:
    """The lab's load generator against wrk on the same endpoint, then open loop.

    The headline figures come from `side_by_side`: both tools at once, `connections` / 2 each, against one gthread
    worker process with a thread per connection, kept on its own cores (`separate_cores`, as a load test keeps
    its generator off the server's machine). Run one
    after the other, the tools meet a server whose speed on this shared host drifts by up to a half between
    runs, and on shared cores each tool's CPU is taken from the server: the `shared_cores_*` figures (alternating
    runs, `connections` each, tools and server on every core) are kept for the record, with each tool's CPU per
    request that explains most of their throughput gap.

    gunicorn runs gthread workers here so both tools keep their connections alive: with sync workers every
    request costs a new TCP connection, and the client's CPU for that dominates the comparison. The sync-worker
    figures are printed beside, for the record."""
    server_cpus, tool_cpus = separate_cores()
    with Lab(run_dir=run_dir, web_workers=4, web_worker_class="gthread", web_threads=4) as lab:
        shared = compare_with_wrk(lab, "noop", connections, duration_s, trials=4)
        open_loop = run_load(load_spec(lab, "noop", mode="open", rate=open_rate, arrival="poisson",
                                       connections=256, duration_s=10.0, warmup_s=2.0)).summary
    with Lab(run_dir=run_dir / "side-by-side", web_workers=1, web_worker_class="gthread",
             web_threads=connections) as lab:
        turns = side_by_side(lab, "noop", connections // 2, duration_s, trials, server_cpus, tool_cpus)
    with Lab(run_dir=run_dir / "sync", web_workers=4) as lab:
        sync_turns = compare_with_wrk(lab, "noop", connections, duration_s, 1)
        sync = sync_turns.set_index("tool")
    runs.save_table(run_dir, "wrk-vs-lab", pd.concat([turns.assign(server="gthread", design="side by side"),
                                                      shared.assign(server="gthread", design="alternating"),
                                                      sync_turns.assign(server="sync", design="alternating")]))
    shared_figures = harness_figures(shared)
    return {
        "server": f"gunicorn gthread 1 worker x {connections} threads, keep-alive (shared cores: 4 x 4)",
        "server_cpus": server_cpus, "tool_cpus": tool_cpus,
        "connections_each": connections // 2, "trials": trials,
        **harness_figures(turns),
        **{f"shared_cores_{k}": shared_figures[k] for k in ("rps_ratio", "p50_ratio", "lab_rps", "wrk_rps",
                                                            "lab_cpu_us_per_request", "wrk_cpu_us_per_request")},
        "achieved_rate": round(open_loop["achieved_rate"], 1),
        "achieved_ratio": round(open_loop["achieved_rate"] / open_rate, 4),
        "sched_lag_p99_ms": open_loop["lag_p99_ms"],
        "open_loop_latency_p50_ms": open_loop["latency_p50_ms"],
        "open_loop_latency_p99_ms": open_loop["latency_p99_ms"],
        "open_loop_late": open_loop["late"],
        "errors": int(turns["errors"].sum() + shared["errors"].sum() + open_loop["errors"]),
        "sync_workers_lab_rps": round(sync.loc["lab", "rps"], 1),
        "sync_workers_wrk_rps": round(sync.loc["wrk", "rps"], 1),
        "sync_workers_rps_ratio": round(sync.loc["lab", "rps"] / sync.loc["wrk", "rps"], 3),
    }


CLAIMS = {
    "s_covers_smtp": "S covers the SMTP delay",
    "p50_near_s": "blocking p50 at the lowest rate within 0.8 S to 1.5 S",
    "p99_climbs": "blocking p99 climbs toward c/S",
    "p99_past_capacity": "blocking p99 past c/S above 3 S",
    "saturates_at_capacity": "blocking saturation throughput within 20% of c/S (quick mode: 30%)",
    "web_cpu": "blocking web workers under half a core at the highest rate",
    "deferred_p50": "deferred p50 below S/10 at every rate",
    "deferred_p99": "deferred p99 below 50 ms where blocking is saturated",
    "consumer_sends": "the consumer sends for the deferred view",
    "closed_levels_off": "closed loop levels off within 20% of c/S (quick mode: 30%)",
    "littles_law": "closed loop obeys Little's law within 20%",
    "open_vs_closed": "open loop past c/S has a longer p99 than the closed loop",
}


def verdict(figures: dict, quick: bool = False) -> dict[str, bool | None]:
    """Notebook 02's claims, from key_figures() and the SMTP delay it ran with (smtp_delay_ms)."""
    f = figures
    service_ms = f["service_s"] * 1e3
    # quick mode's 2 s points, beside another notebook on two shared cores (or a busy core), measured blocking at
    # 0.92-0.99 of c/S and the closed loop at 0.88-0.96; one run in such a suite fell below 0.8
    band = 0.3 if quick else 0.2
    return runs.claims(CLAIMS, {
        "s_covers_smtp": service_ms >= f["smtp_delay_ms"],
        "p50_near_s": 0.8 <= f["blocking_p50_ms_lowest_rate"] / service_ms <= 1.5,
        "p99_climbs": f["blocking_p99_ms_below_capacity"] > f["blocking_p99_ms_lowest_rate"],
        "p99_past_capacity": f["blocking_p99_ms_highest_rate"] > 3 * service_ms,
        "saturates_at_capacity": abs(f["saturation_ratio"] - 1) <= band,
        "web_cpu": f["blocking_cpu_web_pct_highest_rate"] < 50,
        "deferred_p50": f["deferred_p50_ms_max"] < service_ms / 10,
        "deferred_p99": f["deferred_service_p99_ms_at_saturation"] < 50,
        "consumer_sends": (f["consumer_cpu_pct_deferred_highest_rate"]
                           >= f["consumer_cpu_pct_blocking_highest_rate"] + 1),
        "closed_levels_off": abs(f["closed_throughput_max"] / f["capacity_c_over_s"] - 1) <= band,
        "littles_law": f["closed_littles_law_max_error"] <= 0.2,
        "open_vs_closed": f["blocking_p99_ms_highest_rate"] > f["closed_p99_ms_most_users"],
    }, quick)
