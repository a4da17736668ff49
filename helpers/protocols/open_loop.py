"""Open-loop points up a rate ladder: one point of Poisson arrivals at a rate, what the server held and answered,
whether its latency ran away, and where to try next between the highest rate that held and the lowest that ran
away."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

from helpers.instruments.cpu import CpuMeter
from helpers.instruments.loadgen import LoadSpec, run_load
from helpers.protocols.samplers import ServerSampler, kernel_busy_s, machine_busy_s
from helpers.stack import Lab
from helpers.stack.processes import LOOPBACK

RUNAWAY_MIN_MS = 20.0  # a growth below this is scheduling noise on a busy machine, not a queue


@dataclass(frozen=True)
class Target:
    """Where a point sends and what: to the lab's web server, or to a site someone else runs (`site`: host, port)."""

    method: str = "POST"
    body: str | None = None  # sent instead of the form, with content_type
    content_type: str = "application/json"
    site: tuple[str, int] | None = None  # (host, port); None: the lab's web server on loopback
    connections: int = 1024  # the most requests in flight at once
    timeout_s: float = 60.0  # a request unanswered this long counts as failed


def point(lab: Lab | None, path: str, form: dict, rate: float, duration_s: float, warmup_s: float,
          processes: int = 1, baseline_ms: float | None = None, seed: int = 1, target: Target = Target(),
          **labels) -> tuple[dict, pd.DataFrame]:
    """One open-loop point on `path`: Poisson arrivals at `rate` for warm-up + duration, from an empty queue. Its
    latency ran away when its median passed twice `baseline_ms` (the p50 at the ladder's lowest rate; this point's
    own for that first point) plus RUNAWAY_MIN_MS, or the second half of the window waited longer than the first by
    more than a quarter of `baseline_ms` (and RUNAWAY_MIN_MS), or 5 % of the requests failed. Returns its summary
    row and its per-request records, both with `labels`. Without a lab (a site someone else runs, `target.site`),
    no queue is drained and no server process is metered: its CPU counts among the others'."""
    if lab is not None:
        lab.wait_until_drained()  # a deferred backlog would take CPU and SMTP sessions from this point
    host, port = target.site or (LOOPBACK, lab.web_port)
    spec = LoadSpec(host, port, path=path, method=target.method, form=form, body=target.body,
                    content_type=target.content_type, mode="open", rate=rate, arrival="poisson",
                    connections=target.connections, duration_s=duration_s, warmup_s=warmup_s, seed=seed,
                    processes=processes, timeout_s=target.timeout_s)
    machine_before, kernel_before = machine_busy_s(), kernel_busy_s()
    sampled = ServerSampler(lab.processes["web"].pid) if lab is not None else contextlib.nullcontext()
    with CpuMeter(lab, parts=None if lab is not None else {}) as meter, sampled as sampler:
        result = run_load(spec)
    machine_pct = 100 * (machine_busy_s() - machine_before) / meter.wall_s
    kernel_pct = 100 * (kernel_busy_s() - kernel_before) / meter.wall_s  # this process and the generator's
    s, records = result.summary, result.records
    start_ms, end_ms = warmup_s * 1e3, (warmup_s + duration_s) * 1e3
    failed = s["errors"] + s["non_2xx"]
    growth_ms = latency_growth_ms(records, warmup_s, duration_s)
    baseline_ms = s["latency_p50_ms"] if baseline_ms is None else baseline_ms
    answered = s["latency_p50_ms"] is not None  # None: not one request of the window was answered
    ran_away = bool(not answered or s["latency_p50_ms"] > 2 * baseline_ms + RUNAWAY_MIN_MS
                    or growth_ms > max(0.25 * baseline_ms, RUNAWAY_MIN_MS) or failed > 0.05 * s["requests"])
    mean_held, peak_held = in_flight(records, start_ms, end_ms)
    row = {**labels, "rate": rate, "offered_rps": s["achieved_rate"],
           "goodput_rps": answered_rps(records, start_ms, end_ms, ran_away), "requests": s["requests"],
           "failed": failed, "latency_growth_ms": growth_ms, "ran_away": ran_away,
           **{k: s[k] for k in ("latency_p50_ms", "latency_p99_ms", "service_p50_ms", "lag_p99_ms", "late")},
           **meter.usage(), "cpu_generator_pct": 100 * result.generator_cpu_s / meter.wall_s,
           "machine_cpu_pct": machine_pct,
           **{k: getattr(sampler, k, math.nan) for k in ("rss_mb_before", "rss_mb_peak", "threads_peak")},
           "in_flight_mean": mean_held, "in_flight_peak": peak_held,
           "wall_s": meter.wall_s}
    # whatever else ran on the machine meanwhile (other people's processes): the cores it left to the lab
    lab_pct = sum(v for k, v in meter.usage().items())
    row["cpu_others_pct"] = max(0.0, machine_pct - lab_pct - kernel_pct)
    return row, records.assign(**labels, rate=rate)


def memory_per_in_flight(points: pd.DataFrame) -> dict:
    """What one more request in flight adds to the web server's resident memory and threads: the slope between the
    variant's lowest-rate point and the point that held the most requests at once (peaks of each). Requests waiting
    in the listen backlog count as in flight and cost the server nothing: a sync worker's slope is about 0, its
    cost is the worker (mb_per_slot)."""
    low, high = points.iloc[0], points.loc[points["in_flight_peak"].idxmax()]
    extra = high["in_flight_peak"] - low["in_flight_peak"]
    if extra <= 0:
        return {"kb_per_in_flight": math.nan, "threads_per_in_flight": math.nan,
                "in_flight_peak": int(high["in_flight_peak"])}
    return {"kb_per_in_flight": 1024 * max(0.0, high["rss_mb_peak"] - low["rss_mb_peak"]) / extra,
            "threads_per_in_flight": (high["threads_peak"] - low["threads_peak"]) / extra,
            "in_flight_peak": int(high["in_flight_peak"])}


def prime(lab: Lab, path: str, requests: int) -> None:
    """`requests` at once before the first point (two per web worker), so that every worker has served this path: a
    cold worker's first request waits for its imports and connections, seconds on a busy machine."""
    with ThreadPoolExecutor(requests) as pool:
        list(pool.map(lambda i: lab.http.post(path, {"to": f"prime{i}@example.test"}), range(requests)))


def in_flight(records: pd.DataFrame, start_ms: float, end_ms: float) -> tuple[float, int]:
    """Requests the server held (sent, not yet answered) during [start, end]: the mean (Little's law: the time
    they spent there over the window) and the peak."""
    sent, done = records["sent_ms"].to_numpy(), records["done_ms"].to_numpy()
    held = np.clip(done, start_ms, end_ms) - np.clip(sent, start_ms, end_ms)
    events = np.concatenate([np.stack([sent, np.ones_like(sent)], 1), np.stack([done, -np.ones_like(done)], 1)])
    events = events[np.lexsort((events[:, 1], events[:, 0]))]  # an answer before a send at the same instant
    return float(held.sum() / (end_ms - start_ms)), int(np.cumsum(events[:, 1]).max(initial=0))


def answered_rps(records: pd.DataFrame, start_ms: float, end_ms: float, saturated: bool) -> float:
    """Successful answers per second. Below saturation: the requests due in the window that were answered, over
    its length (no edge effect from answers that come after it). Past saturation: every answer from the window's
    start to the last one, over that span: the server stays saturated while it works off the backlog, so this is
    its capacity."""
    good = records[records["error"].isna() & records["status"].between(200, 299)]
    if not saturated:
        return float(good["due_ms"].between(start_ms, end_ms, inclusive="left").sum() / ((end_ms - start_ms) / 1e3))
    good = good[good["done_ms"] >= start_ms]
    end_ms = max(end_ms, float(good["done_ms"].max())) if len(good) else end_ms
    return float(len(good) / ((end_ms - start_ms) / 1e3))


def latency_growth_ms(records: pd.DataFrame, warmup_s: float, duration_s: float) -> float:
    """How much later the second half of the window's requests were answered than the first half (medians of
    latency, by due time). Below saturation about 0; past it the queue grows for as long as the load lasts, and so
    does this: latency runs away."""
    measured = records[~records["warmup"]]
    middle_ms = (warmup_s + duration_s / 2) * 1e3
    first, second = (measured.loc[half, "latency_ms"] for half in
                     (measured["due_ms"] < middle_ms, measured["due_ms"] >= middle_ms))
    return float(second.median() - first.median()) if len(first) and len(second) else math.nan


def refined_rate(rows: list[dict], finest: float = 1.1) -> float | None:
    """The next rate to try between the highest rate that held and the lowest that ran away: their geometric middle,
    or None when there is no such pair or they are already within `finest` (a ratio) of each other."""
    held = [row["rate"] for row in rows if not row["ran_away"]]
    away = [row["rate"] for row in rows if row["ran_away"]]
    if not held or not away or min(away) <= max(held) * finest:
        return None
    return round(math.sqrt(max(held) * min(away)), 1)


def ladder(point_at: Callable[[float, float | None], tuple[dict, pd.DataFrame]], rates: Sequence[float],
           refine_steps: int = 0, cap: Callable[[list[dict]], float] | None = None,
           progress=None) -> tuple[list[dict], list[pd.DataFrame]]:
    """Up the rate ladder until latency runs away (or the ladder ends): one point past saturation is enough. Each
    rung is capped at `cap(rows so far)` when given, and the ladder stops when a capped rung is no higher than the
    last. Then `refine_steps` points narrow down where between two rungs it ran away (refined_rate).
    `point_at(rate, baseline_ms)` measures one point (`point`, whose runaway baseline is the p50 at the first rung:
    None for that first one) and returns its row and records. Returns the rows and records, in the order measured;
    `progress` (a tqdm bar) advances a step per point."""
    rows: list[dict] = []
    records: list[pd.DataFrame] = []

    def measure_at(rate: float) -> dict:
        row, frame = point_at(rate, rows[0]["latency_p50_ms"] if rows else None)
        rows.append(row)
        records.append(frame)
        if progress is not None:
            progress.update(1)
        return row

    for rate in rates:
        if rows and cap is not None:
            rate = min(rate, cap(rows))
            if rate <= rows[-1]["rate"]:
                break
        if measure_at(rate)["ran_away"]:
            break
    for _ in range(refine_steps):
        rate = refined_rate(rows)
        if rate is None:
            break
        measure_at(rate)
    return rows, records
