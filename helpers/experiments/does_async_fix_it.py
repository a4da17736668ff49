"""Notebook 08, does async fix it: the article's "server blocking" and "response time" columns, measured apart.

The same welcome email, the same SMTP server and delay, the same open-loop load generator, seven ways:

    sync view, gunicorn sync workers       (/email/blocking/)  a send holds a worker process
    sync view, gunicorn gthread            (/email/blocking/)  a send holds one of the worker's threads
    async view + aiosmtplib, uvicorn       (/email/async/)     the coroutine waits on the socket
    async view + sync_to_async, uvicorn    (thread-sensitive, Django's default; and thread_sensitive=False)
    deferred to Huey, gunicorn and uvicorn (/email/deferred/)  the request only enqueues

Per variant: the saturation throughput (the open-loop rate where answers fall behind arrivals), p50/p99 below it,
memory per request in flight, what the user is told when the SMTP server fails mid-request, and the capacity the
utilisation law predicts (helpers.analysis.queueing.bottleneck). `python -m helpers bench does_async_fix_it`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import psutil

from helpers import runs
from helpers.analysis import queueing
from helpers.protocols import open_loop, user_told
from helpers.runs.bench import benchmark
from helpers.stack import Lab

SERVERS = ("gunicorn sync", "gunicorn gthread", "uvicorn")  # the lab restarts its web server between them


@dataclass(frozen=True)
class Variant:
    name: str  # the prefix of its figures
    label: str
    path: str
    server: str  # a key of SERVERS
    holds: str  # what one send in the request holds, bounding how many run at once: "worker", "thread",
    # "pool thread" (a bounded pool) or "" (nothing bounded)
    deferred: bool = False


VARIANTS = (
    Variant("sync", "sync view, gunicorn sync workers", "/email/blocking/", "gunicorn sync", "worker"),
    Variant("deferred_gunicorn", "deferred to Huey, gunicorn sync workers", "/email/deferred/", "gunicorn sync", "",
            deferred=True),
    Variant("gthread", "sync view, gunicorn gthread", "/email/blocking/", "gunicorn gthread", "thread"),
    Variant("async", "async view + aiosmtplib, uvicorn", "/email/async/", "uvicorn", ""),
    Variant("thread_sensitive", "async view + sync_to_async (thread_sensitive=True), uvicorn",
            "/email/async/thread-sensitive/", "uvicorn", ""),
    Variant("thread_pool", "async view + sync_to_async (thread_sensitive=False), uvicorn",
            "/email/async/thread-pool/", "uvicorn", "pool thread"),
    Variant("deferred_uvicorn", "deferred to Huey, uvicorn", "/email/deferred/", "uvicorn", "", deferred=True),
)
BY_NAME = {v.name: v for v in VARIANTS}


@dataclass
class Setup:
    """Every knob of the experiment (the notebook's parameters, the benchmark's defaults)."""

    smtp_delay_s: float = 0.3  # a slow provider, as in notebooks 01 and 04
    smtp_timeout_s: float = 2.0  # the site's SMTP client timeout: how long a stalled provider holds a request
    web_workers: int = 4  # processes, under gunicorn and uvicorn alike
    web_threads: int = 4  # gunicorn gthread's threads per worker
    web_limit_concurrency: int | None = None  # uvicorn's per-worker limit (503 beyond it); None: none
    consumer_workers: int = 64  # Huey thread workers: they drain a deferred point's backlog before the next point
    rate_steps: tuple[float, ...] = (0.5, 1, 2, 4, 8, 16, 32)  # arrival rates, in multiples of the sync workers'
    # c/S: each variant goes up until its latency runs away (one point past saturation), never above twice the
    # capacity the model predicts from its points so far
    deferred_steps: tuple[float, ...] | None = None  # the deferred variants' own ladder (None: the same)
    refine_steps: int = 2  # points after the first runaway, each at the geometric middle of the highest rate that
    # held and the lowest that ran away: the ladder doubles, so each halves (on a log scale) where saturation lies
    duration_s: float = 3.0  # measured part of each point
    warmup_s: float = 1.0  # sent first, left out
    generator_processes: int = 1  # one uvloop process keeps up with these rates (its lag is recorded)
    variants: tuple[str, ...] = tuple(v.name for v in VARIANTS)

    @property
    def nominal_capacity(self) -> float:
        """c/S with S = the SMTP delay: the scale of the rate ladder (the model uses the measured S)."""
        return queueing.saturation_rate(self.smtp_delay_s, self.web_workers)

    def rates(self, variant: Variant) -> list[float]:
        steps = self.deferred_steps if variant.deferred and self.deferred_steps else self.rate_steps
        return [round(step * self.nominal_capacity, 1) for step in steps]

    def points_planned(self) -> int:
        """The most load points the ladders and their refinements can take (for a progress bar)."""
        return sum(len(self.rates(BY_NAME[name])) + self.refine_steps for name in self.variants)

    def server_config(self, server: str) -> dict:
        """The LabConfig fields of one web server configuration (gunicorn runs gthread whenever threads > 1)."""
        return {"gunicorn sync": {"web_server": "gunicorn", "web_worker_class": "sync", "web_threads": 1},
                "gunicorn gthread": {"web_server": "gunicorn", "web_worker_class": "gthread",
                                     "web_threads": self.web_threads},
                "uvicorn": {"web_server": "uvicorn", "web_limit_concurrency": self.web_limit_concurrency}}[server]

    def lab_config(self) -> dict:
        return {"smtp_delay_s": self.smtp_delay_s, "smtp_timeout_s": self.smtp_timeout_s,
                "web_workers": self.web_workers, "consumer_workers": self.consumer_workers,
                "consumer_max_delay_s": 1.0, "huey_log_level": "WARNING",
                **self.server_config(self.server_order()[0])}

    def server_order(self) -> list[str]:
        return list(dict.fromkeys(BY_NAME[name].server for name in self.variants))

    def slots(self, variant: Variant) -> float:
        """How many sends the server holds at once for this variant (inf: no bound but the machine)."""
        per_process = {"worker": 1, "thread": self.web_threads, "pool thread": queueing.executor_threads()}
        if variant.holds:
            return self.web_workers * per_process[variant.holds]
        if variant.server == "uvicorn" and self.web_limit_concurrency and not variant.deferred:
            return self.web_workers * self.web_limit_concurrency
        return math.inf


def sweep_variant(lab: Lab, variant: Variant, setup: Setup, progress=None) -> tuple[list[dict], list[pd.DataFrame]]:
    """Up the rate ladder until latency runs away (or the ladder ends): one point past saturation is enough. No rung
    goes above twice what the variant's slots allow (slots / S, S from its first point), so the overload, and the
    backlog the server works off after it, stays bounded. (CPU bounds are left out here: estimated at a low rate
    they are too low.) Then `setup.refine_steps` points narrow down where between two rungs it ran away."""
    open_loop.prime(lab, variant.path, 2 * setup.web_workers)

    def point_at(rate: float, baseline_ms: float | None) -> tuple[dict, pd.DataFrame]:
        return open_loop.point(lab, variant.path, {"to": f"{variant.name}{{i}}@example.test"}, rate, setup.duration_s,
                               setup.warmup_s, setup.generator_processes, baseline_ms, variant=variant.name,
                               server=variant.server)

    rows, records = open_loop.ladder(
        point_at, setup.rates(variant), setup.refine_steps, progress=progress,
        cap=lambda done: round(2 * setup.slots(variant) / (done[0]["service_p50_ms"] / 1e3), 1))
    if progress is not None:
        progress.update(len(setup.rates(variant)) + setup.refine_steps - len(rows))
    return rows, records


# -- what the user is told when the SMTP server fails mid-request ----------------------------------------------------

# -- the model --------------------------------------------------------------------------------------------------------

def resources(setup: Setup, variant: Variant, points: pd.DataFrame, cores: int) -> dict[str, tuple[float, float]]:
    """The model's resources for one variant: name -> (seconds one request takes of it, how many requests it serves
    at once). CPU seconds per answered request come from the busiest of `points` below saturation (the variant's
    points so far, lowest rate first); the slots' service time S from the lowest-rate point. The cores are those the
    machine's other processes left to the lab while it was measured (a busy machine has fewer)."""
    below = points[~points["ran_away"]]
    busiest = (below if len(below) else points).iloc[-1]
    per_request = {k: busiest[k] / 100 / max(busiest["goodput_rps"], 1e-9)
                   for k in busiest.index if k.startswith("cpu_") and k.endswith("_pct") and k != "cpu_others_pct"}
    left = max(0.25, cores - float(points["cpu_others_pct"].mean()) / 100)  # what other processes left of them
    found = {"the cores left to the lab": (sum(per_request.values()), left),
             "web server CPU": (per_request.get("cpu_web_pct", 0.0), min(setup.web_workers, cores)),
             "SMTP server (one event-loop thread)": (per_request.get("cpu_smtp_pct", 0.0), 1)}
    slots = setup.slots(variant)
    if math.isfinite(slots):
        found[f"{int(slots)} {variant.holds} slots"] = (float(points["service_p50_ms"].iloc[0]) / 1e3, slots)
    return found


# -- the whole experiment ---------------------------------------------------------------------------------------------

@dataclass
class Measured:
    setup: Setup
    points: pd.DataFrame  # one row per (variant, rate)
    faults: pd.DataFrame  # one row per (variant, fault)
    records: pd.DataFrame  # every request
    cores: int

    def variant_points(self, name: str) -> pd.DataFrame:
        return self.points[self.points["variant"] == name].sort_values("rate")

    def below_saturation(self, name: str) -> pd.DataFrame:
        points = self.variant_points(name)
        return points[~points["ran_away"]]

    def service_s(self, name: str) -> float:
        """S: the variant's service time at its lowest rate (median from send to answer)."""
        return float(self.variant_points(name)["service_p50_ms"].iloc[0]) / 1e3

    def demands(self, name: str) -> dict[str, tuple[float, float]]:
        return resources(self.setup, BY_NAME[name], self.variant_points(name), self.cores)

    def predicted(self, name: str) -> tuple[float, str]:
        return queueing.bottleneck(self.demands(name))

    def summary(self) -> pd.DataFrame:
        """One row per variant: what it saturates at (measured, and as the model predicts), p50/p99 at the lowest
        rate and at the busiest rate below saturation, and memory per request in flight."""
        rows = []
        for name in self.setup.variants:
            variant, points, below = BY_NAME[name], self.variant_points(name), self.below_saturation(name)
            lowest = points.iloc[0]
            busiest = (below if len(below) else points).iloc[-1]
            ran_away = bool(points["ran_away"].any())
            predicted, binding = self.predicted(name)
            rows.append({
                "variant": name, "label": variant.label, "server": variant.server,
                "slots": self.setup.slots(variant), "service_s": self.service_s(name),
                "saturation_rps": float(points["goodput_rps"].max()), "ran_away": ran_away,
                "runaway_rate": float(points.loc[points["ran_away"], "rate"].min()) if ran_away else math.nan,
                "highest_rate": float(points["rate"].max()),
                "predicted_rps": predicted, "bound_by": binding,
                "p50_ms": float(lowest["latency_p50_ms"]), "p99_ms": float(lowest["latency_p99_ms"]),
                "rate_below_saturation": float(busiest["rate"]),
                "p50_ms_below_saturation": float(busiest["latency_p50_ms"]),
                "p99_ms_below_saturation": float(busiest["latency_p99_ms"]),
                "p50_ms_min": float(below["latency_p50_ms"].min()) if len(below) else math.nan,
                "p50_ms_max": float(below["latency_p50_ms"].max()) if len(below) else math.nan,
                "rss_mb_at_rest": float(lowest["rss_mb_before"]),
                "mb_per_slot": float(lowest["rss_mb_before"]) / self.setup.slots(variant),
                **open_loop.memory_per_in_flight(points),
            })
        return pd.DataFrame(rows)

    def article_columns(self) -> pd.DataFrame:
        """The article's two columns, filled in from the measurement. Server blocking: the variant ran away within
        what its slots allow (saturation at most slots / S, +15 %): each send holds one of a fixed budget. Response
        time: the user waits for the send (p50 at the lowest rate at least the SMTP delay)."""
        sync = self.summary().set_index("variant")
        delay_ms = self.setup.smtp_delay_s * 1e3
        base = sync.loc["sync", "saturation_rps"] if "sync" in sync.index else math.nan
        rows = []
        for name, row in sync.iterrows():
            slot_bound = row["slots"] / row["service_s"]
            holds = math.isfinite(slot_bound) and row["ran_away"] and row["saturation_rps"] <= 1.15 * slot_bound
            held = BY_NAME[name].holds or "slot"
            ratio = f"{row['saturation_rps'] / base:.1f}x the sync workers'"
            if holds:
                blocking = (f"yes: a {held} per send, {int(row['slots'])} at once; saturates at "
                            f"{row['saturation_rps']:.0f}/s (slots / S: {slot_bound:.0f}/s)")
            elif row["ran_away"]:
                blocking = f"no: saturates at {row['saturation_rps']:.0f}/s, {ratio}"
            else:
                blocking = f"no: kept up to {row['saturation_rps']:.0f}/s, the ladder's top ({ratio})"
            waits = row["p50_ms"] >= delay_ms
            response = (f"{'yes' if waits else 'no'}: p50 {row['p50_ms']:.0f} ms, p99 {row['p99_ms']:.0f} ms "
                        f"({row['p50_ms'] / delay_ms:.2f}x the SMTP delay)")
            answers = self.faults[self.faults["variant"] == name].set_index("fault")["user_told"]
            rows.append({"variant": row["label"], "Server blocking": blocking, "Response time": response,
                         **{f"SMTP {fault}": answers.get(fault, "")
                            for fault in user_told.smtp_faults(self.setup.smtp_timeout_s)}})
        return pd.DataFrame(rows)

    def deferred_points(self) -> pd.DataFrame:
        """The deferred variants' points up to the most the aiosmtplib view answered (all of them without it)."""
        points = self.points[self.points["variant"].map(lambda name: BY_NAME[name].deferred)]
        if "async" in self.setup.variants:
            points = points[points["rate"] <= self.variant_points("async")["goodput_rps"].max()]
        return points

    def deferred_p50_ms(self) -> float:
        """The deferred view's highest p50, under either server, at every rate it held (below its own saturation) up
        to the most the aiosmtplib view answered: where an in-request send is at or past its limit, the deferred
        request still only enqueues. Its own saturation may come first (deferred_saturated_first)."""
        points = self.deferred_points()
        return float(points.loc[~points["ran_away"], "latency_p50_ms"].max())

    def deferred_saturated_first(self) -> list[str]:
        """The deferred variants that ran away at a rate the aiosmtplib view still answered. On the lab's shared
        cores the consumer's sends take CPU from the same cores as the server's requests; an in-request send has no
        consumer, so a deferred view's whole pipeline can saturate first (under uvicorn it did in some runs)."""
        points = self.deferred_points()
        return sorted(points.loc[points["ran_away"], "variant"].unique())

    def failure_answers(self) -> dict:
        """What the user was told under the SMTP faults, as the verdict checks it: every in-request send answered
        5xx, after the SMTP timeout when the provider stalled; the deferred view answered 202 and its task failed."""
        deferred = self.faults["variant"].map(lambda name: BY_NAME[name].deferred)
        in_request, queued = self.faults[~deferred], self.faults[deferred]
        stalled = in_request[in_request["fault"] == "stall"]
        return {"fault_in_request_all_5xx": bool(in_request["status"].between(500, 599).all()),
                "fault_stall_waited_timeout": bool((stalled["waited_s"] >= 0.9 * self.setup.smtp_timeout_s).all()),
                "fault_stall_wait_s_min": round(float(stalled["waited_s"].min()), 2) if len(stalled) else None,
                "fault_deferred_accepted_then_failed": bool((queued["status"] == 202).all()
                                                            and (queued["task_state"] == "failed").all())}

    def model_table(self) -> pd.DataFrame:
        """Prediction beside measurement, per variant: every resource's bound and the lowest."""
        rows = []
        for name in self.setup.variants:
            predicted, binding = self.predicted(name)
            bounds = {f"bound: {k}": servers / demand for k, (demand, servers) in self.demands(name).items()
                      if demand > 0}
            measured = float(self.variant_points(name)["goodput_rps"].max())
            rows.append({"variant": name, "predicted_rps": predicted, "bound_by": binding, "measured_rps": measured,
                         "measured_over_predicted": measured / predicted,
                         "ran_away": bool(self.variant_points(name)["ran_away"].any()), **bounds})
        return pd.DataFrame(rows)


def measure(lab: Lab, setup: Setup, progress=None) -> Measured:
    """Every variant, server by server (one restart of the web server between them, same port, same SMTP server),
    then each server's variants under every SMTP fault."""
    rows, records, fault_rows = [], [], []
    for server in setup.server_order():
        config = setup.server_config(server)
        if any(getattr(lab.config, key) != value for key, value in config.items()):
            lab.restart_web(**config)
        variants = [BY_NAME[name] for name in setup.variants if BY_NAME[name].server == server]
        for variant in variants:
            variant_rows, variant_records = sweep_variant(lab, variant, setup, progress)
            rows += variant_rows
            records += variant_records
        endpoints = [user_told.Endpoint(v.name, v.path, queues=v.deferred) for v in variants]
        fault_rows += user_told.under_smtp_faults(lab, endpoints, setup.smtp_timeout_s)
    return Measured(setup, pd.DataFrame(rows), pd.DataFrame(fault_rows), pd.concat(records, ignore_index=True),
                    psutil.cpu_count())


def key_figures(measured: Measured) -> dict:
    """The figures notebook 08 records and `bench does_async_fix_it` prints: per variant its saturation throughput
    (measured and predicted), whether it ran away within the ladder, p50/p99 at the lowest rate, memory per request in
    flight; then what the verdict compares: the async send against the sync workers, its lowest p50 against the SMTP
    delay, the deferred view's highest p50 under either server at the rates it held up to the async send's saturation
    (and which deferred variants saturated first), every in-request send's lowest p50, each slot-bound variant's slots /
    S, a sync worker slot's memory, and what the user was told under the SMTP faults."""
    summary = measured.summary().set_index("variant")
    figures = {"smtp_delay_ms": round(measured.setup.smtp_delay_s * 1e3, 1),
               "web_workers": measured.setup.web_workers, "cores": measured.cores,
               "sync_capacity_c_over_s": round(queueing.saturation_rate(measured.service_s("sync"),
                                                                        measured.setup.web_workers), 2)
               if "sync" in summary.index else None}
    for name, row in summary.iterrows():
        figures.update({f"{name}_saturation_rps": round(row["saturation_rps"], 1),
                        f"{name}_ran_away": row["ran_away"],
                        f"{name}_predicted_rps": round(row["predicted_rps"], 1),
                        f"{name}_p50_ms": round(row["p50_ms"], 2), f"{name}_p99_ms": round(row["p99_ms"], 2),
                        f"{name}_kb_per_in_flight": round(row["kb_per_in_flight"], 1),
                        f"{name}_threads_per_in_flight": round(row["threads_per_in_flight"], 2)})
    deferred = [name for name in summary.index if BY_NAME[name].deferred]
    if "async" in summary.index and "sync" in summary.index:
        figures["async_over_sync_saturation"] = round(summary.loc["async", "saturation_rps"]
                                                      / summary.loc["sync", "saturation_rps"], 2)
        figures["async_p50_ms_min"] = round(summary.loc["async", "p50_ms_min"], 2)
    if deferred:
        figures["deferred_p50_ms"] = round(measured.deferred_p50_ms(), 2)
        figures["deferred_saturated_first"] = measured.deferred_saturated_first()
    for name, row in summary[np.isfinite(summary["slots"])].iterrows():
        figures[f"{name}_slot_bound_rps"] = round(row["slots"] / row["service_s"], 1)
    in_request = [name for name in summary.index if not BY_NAME[name].deferred]
    figures["in_request_p50_ms_min"] = round(float(summary.loc[in_request, "p50_ms_min"].min()), 2)
    if "sync" in summary.index:
        figures["sync_mb_per_slot"] = round(summary.loc["sync", "mb_per_slot"], 1)
    figures.update(measured.failure_answers())
    figures["generator_lag_p99_ms_max"] = round(float(measured.points["lag_p99_ms"].max()), 2)
    figures["requests"] = int(measured.points["requests"].sum())
    return figures


@benchmark("does_async_fix_it", aliases=("async",))
def async_views(run_dir, smtp_delay_s: float = 0.3, smtp_timeout_s: float = 2.0, web_workers: int = 4,
                web_threads: int = 4, consumer_workers: int = 64, rate_steps=(0.5, 1, 2, 4, 8, 16, 32),
                refine_steps: int = 2, duration_s: float = 3.0, warmup_s: float = 1.0) -> dict:
    """Notebook 08's sweep with its full-mode parameters (Setup's defaults)."""
    setup = Setup(smtp_delay_s=smtp_delay_s, smtp_timeout_s=smtp_timeout_s, web_workers=web_workers,
                  web_threads=web_threads, consumer_workers=consumer_workers, rate_steps=tuple(rate_steps),
                  refine_steps=refine_steps, duration_s=duration_s, warmup_s=warmup_s)
    with Lab(run_dir=run_dir, **setup.lab_config()) as lab:
        measured = measure(lab, setup)
    save_tables(run_dir, measured)
    return key_figures(measured)


def save_tables(run_dir, measured: Measured) -> None:
    runs.save_table(run_dir, "points", measured.points)
    runs.save_table(run_dir, "faults", measured.faults)
    runs.save_table(run_dir, "requests", measured.records)
    runs.save_table(run_dir, "summary", measured.summary())
    runs.write_metadata(run_dir, {"setup": asdict(measured.setup)})


CLAIMS = {
    "async_5x": "async saturation at least 5x the sync workers' (same processes)",
    "async_waits": "async p50 at least the SMTP delay at every rate below saturation, as every in-request send's",
    "deferred_fast": "deferred p50 under a tenth of the SMTP delay at every rate it held up to the async send's "
                     "saturation (quick mode: a fifth)",
    "sync_at_capacity": "sync workers saturate at c/S (within 30%)",
    "thread_sensitive_3x": "thread-sensitive sync_to_async at least 3x the sync workers",
    "slot_bound": "gthread and thread_sensitive=False held by their slots: run away at most at slots / S, between sync "
                  "and async",
    "smtp_failure": "SMTP failure: 5xx in the request (after the timeout if it stalls), 202 then a failed task "
                    "deferred",
    "async_memory": "async send in flight under a tenth of a sync worker slot's memory",
    "async_thread": "under uvicorn an aiosmtplib request in flight still holds a thread (the sync middleware)",
}


def verdict(figures: dict, quick: bool = False) -> dict[str, bool | None]:
    """Notebook 08's claims, from key_figures()."""
    f, smtp_ms = figures, figures["smtp_delay_ms"]
    return runs.claims(CLAIMS, {
        "async_5x": f["async_saturation_rps"] >= 5 * f["sync_saturation_rps"],
        "async_waits": f["async_p50_ms_min"] >= smtp_ms and f["in_request_p50_ms_min"] >= smtp_ms,
        "deferred_fast": f["deferred_p50_ms"] < smtp_ms / (5 if quick else 10),
        "sync_at_capacity": abs(f["sync_saturation_rps"] / f["sync_capacity_c_over_s"] - 1) <= 0.3,
        "thread_sensitive_3x": f["thread_sensitive_saturation_rps"] >= 3 * f["sync_saturation_rps"],
        "slot_bound": all(f[f"{name}_ran_away"] and f[f"{name}_saturation_rps"] <= 1.15 * f[f"{name}_slot_bound_rps"]
                          and f["sync_saturation_rps"] < f[f"{name}_saturation_rps"] < f["async_saturation_rps"]
                          for name in ("gthread", "thread_pool")),
        "smtp_failure": (f["fault_in_request_all_5xx"] and f["fault_stall_waited_timeout"]
                         and f["fault_deferred_accepted_then_failed"]),
        "async_memory": f["async_kb_per_in_flight"] < 0.1 * 1024 * f["sync_mb_per_slot"],
        "async_thread": f["async_threads_per_in_flight"] >= 0.5,
    }, quick)
