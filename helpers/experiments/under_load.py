"""Notebook 02, under load: where the blocking view hits its ceiling (open- and closed-loop sweeps, the M/D/c
model beside them), and `python -m helpers bench harness`, which checks the load generator against wrk."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
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


def compare_with_wrk(lab: Lab, endpoint: str = "noop", connections: int = 16, duration_s: float = 8.0,
                     trials: int = 2) -> pd.DataFrame:
    """Closed loop at the same connection count, the lab's generator and wrk taking turns (A B, B A...), then wrk
    again at the concurrency the lab's generator really kept in flight ("wrk matched"): a generator short of CPU
    keeps fewer requests in flight than its connections, and a latency is comparable only at the same load.

    wrk times a request from its write to the end of the response; the lab's `service` time is the same span. In
    flight: the lab's is measured from its records, wrk's from Little's law (throughput x mean latency); the
    lab's Little's-law figure is kept beside its measured one, as a check of its bookkeeping."""
    path, method, form = ENDPOINTS[endpoint]
    body = urlencode({k: v.format(i=0) for k, v in form.items()}) if form else None
    # wrk has no warm-up of its own: a discarded run first, so neither tool meets a cold server.
    wrk.run(lab.url(path), connections, 2, method=method, body=body)

    def run_wrk(trial: int, tool: str, at: int) -> dict:
        figures = wrk.run(lab.url(path), at, duration_s, method=method, body=body)
        return {"tool": tool, "trial": trial, "connections": at, "rps": figures["rps"], "p50_ms": figures["p50_ms"],
                "p99_ms": figures["p99_ms"], "in_flight": figures.get("in_flight", nan), "littles_law": nan,
                "errors": figures["socket_errors"] + figures["non_2xx"]}

    rows = []
    for trial in range(trials):
        tools = ("wrk", "lab") if trial % 2 == 0 else ("lab", "wrk")
        for tool in tools:
            if tool == "wrk":
                rows.append(run_wrk(trial, "wrk", connections))
            else:
                s = run_load(load_spec(lab, endpoint, mode="closed", connections=connections,
                                       duration_s=duration_s, warmup_s=1.0)).summary
                rows.append({"tool": "lab", "trial": trial, "connections": connections, "rps": s["throughput"],
                             "p50_ms": s["service_p50_ms"], "p99_ms": s["service_p99_ms"],
                             "in_flight": s["in_flight_mean"], "littles_law": s["littles_law_in_flight"],
                             "errors": s["errors"] + s["non_2xx"]})
        kept = rows[-1 if tools[-1] == "lab" else -2]["in_flight"]
        rows.append(run_wrk(trial, "wrk matched", max(1, round(kept))))
    return pd.DataFrame(rows)


def harness_figures(turns: pd.DataFrame) -> dict:
    """The generator against wrk, medians over the trials: throughput at the same connection count, p50 at the
    same concurrency in flight (and, for the record, at the same connection count), and the in-flight counts."""
    medians = turns.groupby("tool")[["rps", "p50_ms", "p99_ms", "in_flight", "littles_law", "connections"]].median()
    lab, same, matched = medians.loc["lab"], medians.loc["wrk"], medians.loc["wrk matched"]
    return {
        "lab_rps": round(lab["rps"], 1), "wrk_rps": round(same["rps"], 1),
        "rps_ratio": round(lab["rps"] / same["rps"], 3),
        "lab_p50_ms": round(lab["p50_ms"], 3), "wrk_p50_ms": round(same["p50_ms"], 3),
        "p50_ratio_same_connections": round(lab["p50_ms"] / same["p50_ms"], 3),
        "wrk_matched_connections": int(matched["connections"]), "wrk_matched_p50_ms": round(matched["p50_ms"], 3),
        "p50_ratio": round(lab["p50_ms"] / matched["p50_ms"], 3),
        "lab_in_flight": round(lab["in_flight"], 2), "lab_littles_law_in_flight": round(lab["littles_law"], 2),
        "lab_littles_law_error": round(abs(lab["littles_law"] / lab["in_flight"] - 1), 4),
        "wrk_in_flight": round(same["in_flight"], 2),
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


def summarize_points(points: pd.DataFrame, columns=("throughput", "latency_p50_ms", "latency_p99_ms")) -> pd.DataFrame:
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


@benchmark("harness")
def harness(run_dir, connections: int = 16, duration_s: float = 8.0, trials: int = 3,
            open_rate: float = 1000.0) -> dict:
    """The lab's load generator against wrk on the same endpoint and connection count, then open loop.

    gunicorn runs gthread workers here so both tools keep their connections alive: with sync workers every
    request costs a new TCP connection, and the client's CPU for that (taken from the same 2 cores as the
    server) dominates the comparison. The sync-worker figures are printed beside, for the record."""
    with Lab(run_dir=run_dir, web_workers=4, web_worker_class="gthread", web_threads=4) as lab:
        turns = compare_with_wrk(lab, "noop", connections, duration_s, trials)
        open_loop = run_load(load_spec(lab, "noop", mode="open", rate=open_rate, arrival="poisson",
                                       connections=256, duration_s=10.0, warmup_s=2.0)).summary
    with Lab(run_dir=run_dir / "sync", web_workers=4) as lab:
        sync_turns = compare_with_wrk(lab, "noop", connections, duration_s, 1)
        sync = sync_turns.set_index("tool")
    runs.save_table(run_dir, "wrk-vs-lab", pd.concat([turns.assign(server="gthread"),
                                                      sync_turns.assign(server="sync")]))
    return {
        "server": "gunicorn gthread 4 workers x 4 threads, keep-alive",
        "connections": connections, "trials": trials,
        **harness_figures(turns),
        "achieved_rate": round(open_loop["achieved_rate"], 1),
        "achieved_ratio": round(open_loop["achieved_rate"] / open_rate, 4),
        "sched_lag_p99_ms": open_loop["lag_p99_ms"],
        "open_loop_latency_p50_ms": open_loop["latency_p50_ms"],
        "open_loop_latency_p99_ms": open_loop["latency_p99_ms"],
        "open_loop_late": open_loop["late"],
        "errors": int(turns["errors"].sum() + open_loop["errors"]),
        "sync_workers_lab_rps": round(sync.loc["lab", "rps"], 1),
        "sync_workers_wrk_rps": round(sync.loc["wrk", "rps"], 1),
        "sync_workers_rps_ratio": round(sync.loc["lab", "rps"] / sync.loc["wrk", "rps"], 3),
    }
