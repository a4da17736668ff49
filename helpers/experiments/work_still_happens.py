"""The experiments of "the work still happens" (notebook 03 and `python -m helpers bench work_still_happens`):
where a deferred task's time goes, the backlog when arrivals outpace the consumer, the pickup delay after idle
periods against the consumer's polling settings (helpers.protocols.pickup.enqueue_to_start), and workers x worker
type per job.

Each needs a running Lab with record_task_events=True (except helpers.protocols.drain.enqueue_and_drain, which reads
only the queue).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from helpers import runs
from helpers.analysis import latency
from helpers.instruments import cpu, enqueuer, lifecycle, queue_probe
from helpers.instruments.client import RequestSpec, time_requests
from helpers.protocols import pickup
from helpers.protocols.consumers import ensure_consumers
from helpers.protocols.drain import EnqueueDrain, enqueue_and_drain
from helpers.runs.bench import benchmark
from helpers.stack import Lab


def enqueue_plan(kind: str, offsets_s, api: str = "huey", source_image=None) -> enqueuer.EnqueuePlan:
    return enqueuer.EnqueuePlan(kind, [float(o) for o in offsets_s], api,
                                str(source_image) if source_image else None)


# -- 1. response time against end-to-end completion, through the site --------------------------------------

@dataclass
class CompletionResult:
    timings: pd.DataFrame  # every request, warm-ups flagged
    tasks: pd.DataFrame  # one row per deferred task: lifecycle, joined to the request that enqueued it
    summary: pd.DataFrame  # per label: response time and (deferred) end-to-end time percentiles


def job_request_specs(source_image, requests: int, warmup: int = 1) -> list[RequestSpec]:
    email = {"to": "user{i}@example.test"}
    image = {"image": str(source_image)}
    return [
        RequestSpec("email blocking", "/email/blocking/", requests, "POST", email, warmup=warmup),
        RequestSpec("email deferred", "/email/deferred/", requests, "POST", email, warmup=warmup),
        RequestSpec("thumbnail blocking", "/thumbnails/blocking/", requests, "POST", warmup=warmup, files=image),
        RequestSpec("thumbnail deferred", "/thumbnails/deferred/", requests, "POST", warmup=warmup, files=image),
    ]


def attach_requests(tasks: pd.DataFrame, timings: pd.DataFrame) -> pd.DataFrame:
    """Join each task to the request that enqueued it: the one whose [start, end] holds its enqueue time
    (the client sends one request at a time, so the windows do not overlap)."""
    requests = timings.assign(request_start=timings["started_at"],
                              request_end=timings["started_at"] + timings["total_ms"] / 1e3)
    requests = requests.sort_values("request_start")[["request_start", "request_end", "label", "warmup", "seq"]]
    joined = pd.merge_asof(tasks.sort_values("enqueued"), requests, left_on="enqueued", right_on="request_start")
    inside = joined["enqueued"] <= joined["request_end"]
    joined.loc[~inside, ["label", "request_start", "request_end"]] = np.nan
    joined["request_to_finish_ms"] = (joined["finished"] - joined["request_start"]) * 1e3
    return joined


def response_vs_completion(lab: Lab, source_image, requests: int, warmup: int = 1) -> CompletionResult:
    """Blocking and deferred requests of both jobs, interleaved; then every deferred task's life."""
    since = time.time()
    timings = time_requests("127.0.0.1", lab.web_port, job_request_specs(source_image, requests, warmup),
                            include_warmup=True)
    deferred = timings["label"].str.endswith("deferred") & (timings["status"] == 202)
    tasks = lifecycle.wait_for_tasks(lab.stats_file, since, expected=int(deferred.sum()))
    tasks = attach_requests(tasks, timings)
    measured = timings[~timings["warmup"]]
    summary = latency.summarize(measured)[["n", "p50_ms", "p95_ms", "max_ms"]]
    timed_tasks = tasks[tasks["warmup"] == False]  # noqa: E712 (NaN for unmatched tasks must not count)
    completion = latency.summarize(timed_tasks.rename(columns={"end_to_end_ms": "total_ms"}))
    for label in completion.index:
        summary.loc[label, "end_to_end_p50_ms"] = completion.loc[label, "p50_ms"]
        summary.loc[label, "end_to_end_p95_ms"] = completion.loc[label, "p95_ms"]
    return CompletionResult(timings, tasks, summary)


# -- 2. backlog: arrivals faster than the consumer ------------------------------------------------------------

@dataclass
class BacklogResult:
    depth: pd.DataFrame  # t (s from the first arrival), depth (sampled), predicted
    tasks: pd.DataFrame
    arrival_rate: float  # tasks/s offered
    capacity: float  # tasks/s the consumer can serve: workers / median run time (c/S; holds for I/O-bound work)
    littles_law_depth: float  # mean number waiting = sum of queue waits / span (Little's law, from the recorder)
    sampled_mean_depth: float  # time-average of the sampled depth over the same span


def fluid_backlog(t: np.ndarray, arrival_rate: float, capacity: float, arrivals_s: float) -> np.ndarray:
    """Queue length if work arrived and left as fluids: grows at (arrival - capacity) while arrivals last,
    then drains at capacity."""
    peak = max(0.0, arrival_rate - capacity) * arrivals_s
    growing = np.clip((arrival_rate - capacity) * t, 0, None)
    draining = np.clip(peak - capacity * (t - arrivals_s), 0, None)
    return np.where(t <= arrivals_s, growing, draining)


def backlog(lab: Lab, kind: str, arrival_rate: float, arrivals_s: float, source_image=None,
            sample_interval_s: float = 0.01) -> BacklogResult:
    """Open-loop arrivals at `arrival_rate` for `arrivals_s`, the queue depth sampled meanwhile."""
    count = int(round(arrival_rate * arrivals_s))
    plan = enqueue_plan(kind, np.arange(count) / arrival_rate, source_image=source_image)
    since = time.time()
    with queue_probe.QueueDepthSampler(lab.queue, sample_interval_s) as sampler:
        enqueued = enqueuer.enqueue(lab.django_env(), plan)
        tasks = lifecycle.wait_for_tasks(lab.stats_file, since, task_ids=enqueued["task_id"])
    start = tasks["enqueued"].min()
    depth = sampler.frame()
    depth = depth[(depth["t"] >= start - 0.05) & (depth["t"] <= tasks["finished"].max() + 0.05)].copy()
    depth["t"] -= start
    capacity = lab.config.consumer_workers / (tasks["run_ms"].median() / 1e3)  # c / S, for I/O-bound work
    depth["predicted"] = fluid_backlog(depth["t"].to_numpy(), arrival_rate, capacity, arrivals_s)
    span_end = tasks["dequeued"].max()
    inside = depth[depth["t"] <= span_end - start]
    return BacklogResult(depth.reset_index(drop=True), tasks, arrival_rate, capacity,
                         littles_law_depth=float(tasks["queue_wait_ms"].sum() / 1e3 / (span_end - start)),
                         sampled_mean_depth=time_average(inside["t"].to_numpy(), inside["depth"].to_numpy()))


def time_average(t: np.ndarray, values: np.ndarray) -> float:
    """Mean of a step function sampled at times t (each value holds until the next sample)."""
    if len(t) < 2:
        return float("nan")
    return float(np.sum(values[:-1] * np.diff(t)) / (t[-1] - t[0]))


# -- 3. pickup delay after idle periods, against polling settings ---------------------------------------------

def consumer_idle_cpu(lab: Lab, polling: dict, seconds: float) -> float:
    """CPU the idle consumer (all its workers) burns with these polling settings, in % of one core (its consumers
    restarted only if they poll otherwise)."""
    ensure_consumers(lab, **polling)
    time.sleep(1.0)  # past a start-up, the last task's bookkeeping and Huey's first back-off steps
    return cpu.idle_cpu_percent([lab.processes[name].pid for name in lab.consumer_names()], seconds)


def polling_costs(lab: Lab, idle_s: list[float], repeats: int, cpu_window_s: float,
                  settings: dict[str, dict] | None = None) -> tuple[pd.DataFrame, dict[str, float]]:
    """Per polling setting (name -> consumer settings; default pickup.POLLING_SETTINGS): the pickup delays after idle
    periods (pickup.enqueue_to_start), then the idle consumer's CPU with the same consumers, still running."""
    frames, idle_cpu = [], {}
    for name, polling in (settings or pickup.POLLING_SETTINGS).items():
        frames.append(pickup.enqueue_to_start(lab, idle_s, repeats, polling, name))
        idle_cpu[name] = consumer_idle_cpu(lab, polling, cpu_window_s)
    return pd.concat(frames, ignore_index=True), idle_cpu


# -- 4. consumer workers and worker type, per job -------------------------------------------------------------

def drain(lab: Lab, kind: str, count: int, workers: int, worker_type: str, source_image=None,
          api: str = "huey") -> pd.DataFrame:
    """Fill the queue with `count` tasks while no consumer runs, then start one and let it empty the queue."""
    lab.stop_consumer()
    since = time.time()
    enqueued = enqueuer.enqueue(lab.django_env(), enqueue_plan(kind, [0.0] * count, api, source_image))
    lab.start_consumer(consumer_workers=workers, consumer_worker_type=worker_type)
    return lifecycle.wait_for_tasks(lab.stats_file, since, task_ids=enqueued["task_id"])


def throughput(tasks: pd.DataFrame) -> float:
    """Tasks per second from the first pickup to the last finish."""
    return len(tasks) / (tasks["finished"].max() - tasks["dequeued"].min())


def worker_sweep(lab: Lab, kinds: dict[str, int], worker_counts, worker_types, source_image=None,
                 repeats: int = 1) -> pd.DataFrame:
    """Throughput of each job (kind -> tasks per run) for every worker count and type, `repeats` times. The types
    take turns in alternating order (A B, then B A), so a change in the machine's load weighs on both alike and
    each repeat gives one paired ratio."""
    rows = []
    for repeat in range(repeats):
        for kind, count in kinds.items():
            for workers in worker_counts:
                for worker_type in worker_types if repeat % 2 == 0 else worker_types[::-1]:
                    tasks = drain(lab, kind, count, workers, worker_type, source_image)
                    rows.append({"job": kind, "worker_type": worker_type, "workers": workers, "repeat": repeat,
                                 "tasks": len(tasks), "tasks_per_s": throughput(tasks),
                                 "run_p50_ms": tasks["run_ms"].median(),
                                 "completed": int((tasks["outcome"] == "complete").sum()),
                                 "states_once": int(states_once(tasks).sum())})
    return pd.DataFrame(rows)


def states_once(tasks: pd.DataFrame) -> pd.Series:
    """Per task: each of its states (enqueued, picked up, started, finished) recorded exactly once."""
    return (tasks[[f"n_{state}" for state in lifecycle.STATES]] == 1).all(axis=1)


def paired_ratios(sweep: pd.DataFrame, workers: int | None = None) -> pd.DataFrame:
    """Process over thread throughput per job and repeat, at `workers` (default: the most tried)."""
    workers = workers or int(sweep["workers"].max())
    rates = sweep[sweep["workers"] == workers].pivot_table(index=["job", "repeat"], columns="worker_type",
                                                            values="tasks_per_s")
    return (rates["process"] / rates["thread"]).rename("process_over_thread").reset_index()


# -- 5. Django's Tasks API: the backend setting is the whole difference --------------------------------------

def tasks_api_backends(lab: Lab, requests: int, warmup: int = 1) -> pd.DataFrame:
    """/djtasks/email/ timed on the running lab (a Huey backend: TASKS on Huey's backend) and on a twin lab that
    runs every task in the request (queue_backend "djtasks_immediate": Django's ImmediateBackend): one row per
    request, with its backend."""
    specs = [RequestSpec("djtasks email", "/djtasks/email/", requests, "POST", {"to": "dj{i}@example.test"},
                         warmup=warmup)]
    on_huey = time_requests("127.0.0.1", lab.web_port, specs).assign(backend="huey")
    twin_config = {**asdict(lab.config), "queue_backend": "djtasks_immediate"}
    with Lab(run_dir=lab.run_dir / "immediate-backend", **twin_config) as twin:
        immediate = time_requests("127.0.0.1", twin.web_port, specs).assign(backend="immediate")
    return pd.concat([on_huey, immediate], ignore_index=True)


def enqueue_cost_by_api(lab: Lab, count: int, workers: int, worker_type: str) -> pd.DataFrame:
    """Enqueue cost (µs) and drain rate of no-op tasks, native djhuey against django.tasks on Huey's backend."""
    rows = []
    for api in enqueuer.APIS:
        measured = enqueue_and_drain(lab, count, workers, worker_type, api=api)
        rows.append({"api": api, "n": len(measured.enqueue_us), "enqueue_p50_us": measured.enqueue_us.median(),
                     "enqueue_p99_us": measured.enqueue_us.quantile(0.99),
                     "drain_tasks_per_s": measured.drain_tasks_per_s})
    return pd.DataFrame(rows).set_index("api")



# -- the figures notebook 03 records and `bench work_still_happens` prints: each part from whichever ran ---------

def key_figures(completion: CompletionResult | None = None, backlog_result: BacklogResult | None = None,
                pickups: pd.DataFrame | None = None, idle_cpu: dict[str, float] | None = None,
                sweep: pd.DataFrame | None = None, djtasks: pd.DataFrame | None = None,
                by_api: pd.DataFrame | None = None, drains: dict[str, EnqueueDrain] | None = None) -> dict:
    """One flat dict, the same names whoever measured them (notebook 03 or `bench work_still_happens`)."""
    figures: dict[str, object] = {}
    if completion is not None:
        summary = completion.summary
        for job in ("email", "thumbnail"):
            blocking = summary.loc[f"{job} blocking", "p50_ms"]
            end_to_end = summary.loc[f"{job} deferred", "end_to_end_p50_ms"]
            figures[f"{job}_blocking_p50_ms"] = round(blocking, 2)
            figures[f"{job}_deferred_p50_ms"] = round(summary.loc[f"{job} deferred", "p50_ms"], 2)
            figures[f"{job}_end_to_end_p50_ms"] = round(end_to_end, 2)
            figures[f"{job}_end_to_end_over_blocking"] = round(end_to_end / blocking, 3)
        figures["requests_per_endpoint"] = int(summary["n"].min())
    if backlog_result is not None:
        waits = backlog_result.tasks.sort_values("enqueued")["queue_wait_ms"]
        figures.update({
            "backlog_arrival_rate": backlog_result.arrival_rate,
            "backlog_capacity_per_s": round(backlog_result.capacity, 1),
            "backlog_peak_sampled": float(backlog_result.depth["depth"].max()),
            "backlog_peak_predicted": round(float(backlog_result.depth["predicted"].max()), 1),
            "littles_law_depth": round(backlog_result.littles_law_depth, 2),
            "sampled_mean_depth": round(backlog_result.sampled_mean_depth, 2),
            "backlog_first_wait_ms": round(waits.iloc[0], 1),
            "backlog_last_wait_ms": round(waits.iloc[-1], 1),
        })
    if pickups is not None:
        by_setting = pickups.groupby("setting")["pickup_ms"]
        for setting, p50 in by_setting.median().items():
            figures[f"pickup_p50_ms_{setting}"] = round(p50, 1)
            figures[f"pickup_max_ms_{setting}"] = round(by_setting.max()[setting], 1)
        figures["pickups_per_setting"] = int(by_setting.size().min())
        figures["pickup_idle_max_s"] = round(float(pickups["idle_nominal_s"].max()), 2)
    for setting, cpu_pct in (idle_cpu or {}).items():
        figures[f"idle_cpu_pct_{setting}"] = round(cpu_pct, 2)
    if sweep is not None:
        ratios = paired_ratios(sweep).groupby("job")["process_over_thread"]
        for job, ratio in ratios.median().items():
            figures[f"process_over_thread_{job}"] = round(ratio, 3)  # the median of the paired ratios
        figures["sweep_workers"] = int(sweep["workers"].max())
        figures["sweep_pairs"] = int(ratios.size().min())
    followed = [result.tasks for result in (completion, backlog_result) if result is not None]
    followed += [pickups] if pickups is not None else []
    if followed or sweep is not None:
        figures.update(task_integrity(followed, sweep))
    if djtasks is not None:
        p50 = djtasks.groupby("backend")["total_ms"].median()
        for backend, value in p50.items():
            figures[f"djtasks_response_p50_ms_{backend}"] = round(value, 2)
    if by_api is not None:
        for api, label in (("huey", "native"), ("djtasks", "djtasks")):
            figures[f"enqueue_p50_us_{label}"] = round(by_api.loc[api, "enqueue_p50_us"], 1)
            figures[f"enqueue_p99_us_{label}"] = round(by_api.loc[api, "enqueue_p99_us"], 1)
            figures[f"drain_tasks_per_s_{label}"] = round(by_api.loc[api, "drain_tasks_per_s"])
        figures["enqueues"] = int(by_api["n"].min())
    if drains:
        best = max(drains, key=lambda k: drains[k].drain_tasks_per_s)
        figures["drain_tasks_per_s"] = round(drains[best].drain_tasks_per_s)
        figures["drain_best_setting"] = best
        figures["drain_tasks_per_s_by_setting"] = {k: round(v.drain_tasks_per_s) for k, v in drains.items()}
    return figures


def task_integrity(followed: list[pd.DataFrame], sweep: pd.DataFrame | None) -> dict[str, int]:
    """How many tasks were followed (lifecycle frames, and the sweep's drains as they ran), how many did not
    complete, and how many had a state recorded other than exactly once."""
    counts = [(len(tasks), (tasks["outcome"] != "complete").sum(), (~states_once(tasks)).sum()) for tasks in followed]
    if sweep is not None:
        counts.append((sweep["tasks"].sum(), (sweep["tasks"] - sweep["completed"]).sum(),
                       (sweep["tasks"] - sweep["states_once"]).sum()))
    total, not_completed, not_once = (int(sum(column)) for column in zip(*counts, strict=True))
    return {"tasks_followed": total, "tasks_not_completed": not_completed, "tasks_with_a_state_not_once": not_once}


def status_codes(djtasks: pd.DataFrame) -> dict[str, list[int]]:
    """The HTTP status codes each TASKS backend answered (tasks_api_backends), sorted."""
    return {backend: sorted(int(s) for s in group.unique()) for backend, group in djtasks.groupby("backend")["status"]}


@benchmark("work_still_happens", aliases=("queue",))
def queue_bench(run_dir, enqueues: int = 5000, idle_s: float = 5.0, pickups_per_setting: int = 7,
                cpu_window_s: float = 8.0) -> dict:
    """The queue itself: a direct enqueue (native djhuey and through django.tasks), how fast the consumer drains
    no-op tasks (best of a few settings), the pickup delay after `idle_s` idle with Huey's default polling and
    with tuned polling, and what the tuned polling costs an idle consumer in CPU."""
    drains = {}
    # Recording off and Huey's per-task log lines off: the drain measures the queue, not the instruments.
    with Lab(run_dir=run_dir, web_workers=1, huey_log_level="WARNING", **pickup.TUNED_POLLING) as lab:
        by_api = enqueue_cost_by_api(lab, enqueues, 4, "thread")
        for workers, worker_type in ((4, "thread"), (8, "thread"), (4, "process")):
            drains[f"{workers} {worker_type}"] = enqueue_and_drain(lab, enqueues, workers, worker_type)
        drains["4 thread, Huey's INFO log lines"] = enqueue_and_drain(lab, enqueues, 4, "thread",
                                                                      huey_log_level="INFO")
        lab.start_consumer(consumer_workers=4, consumer_worker_type="thread", record_task_events=True,
                           huey_log_level="WARNING")
        pickups, idle_cpu = polling_costs(lab, [idle_s], pickups_per_setting, cpu_window_s)
    runs.save_table(run_dir, "pickups", pickups)
    return {**key_figures(pickups=pickups, idle_cpu=idle_cpu, by_api=by_api, drains=drains),
            "pickup_idle_s": idle_s, "polling": pickup.POLLING_SETTINGS, "consumer_workers_pickup": 4}


CLAIMS = {
    "response_3x": "deferred response p50 at least 3x below blocking, both jobs (quick mode: 2x)",
    "end_to_end_near_blocking": "deferred end-to-end p50 within 0.5x-2x of the blocking response, both jobs "
                                "(full mode)",
    "completed": "every task completed",
    "states_once": "every state recorded exactly once per task",
    "backlog_grew": "backlog grew while arrivals outpaced the consumer",
    "last_waited_longer": "the last task waited longer in the queue than the first",
    "littles_law": "sampled mean depth within 25% of Little's law",
    "tuned_pickup_20ms": "tuned pickup p50 at most 20 ms (quick mode: 50 ms)",
    "tuned_pickup_sooner": "tuned pickup p50 below default",
    "tuned_idle_cpu": "tuned polling costs more idle CPU than the default",
    "process_thumbnails": "process workers beat thread workers on thumbnails (>= 1.15x; quick mode: >= 0.5x)",
    "process_email": "and not on email, below 1.15x (full mode)",
    "tasks_backends": "TASKS = immediate answers 200 after the send, huey 202 at once (>= 5x faster)",
    "djtasks_enqueue_cost": "a django.tasks enqueue costs more than a native djhuey one",
}


def verdict(figures: dict, quick: bool = False) -> dict[str, bool | None]:
    """Notebook 03's claims, from key_figures() and the status codes each TASKS backend answered
    (djtasks_statuses, status_codes()). Quick mode times three requests per endpoint beside other notebooks on the
    same two cores: the ratio of two such timings (end to end against blocking, process against thread workers on
    email) is held in full mode only, and the thumbnail's response ratio and the tuned pickup to wider bounds."""
    f, jobs = figures, ("email", "thumbnail")
    return runs.claims(CLAIMS, {
        "response_3x": all(f[f"{job}_blocking_p50_ms"] >= (2 if quick else 3) * f[f"{job}_deferred_p50_ms"]
                           for job in jobs),
        "end_to_end_near_blocking": all(0.5 <= f[f"{job}_end_to_end_over_blocking"] <= 2 for job in jobs),
        "completed": f["tasks_followed"] > 0 and f["tasks_not_completed"] == 0,
        "states_once": f["tasks_with_a_state_not_once"] == 0,
        "backlog_grew": f["backlog_peak_sampled"] >= 0.5 * f["backlog_peak_predicted"] > 0,
        "last_waited_longer": f["backlog_last_wait_ms"] > f["backlog_first_wait_ms"],
        "littles_law": abs(f["sampled_mean_depth"] / f["littles_law_depth"] - 1) <= 0.25,
        "tuned_pickup_20ms": f["pickup_p50_ms_tuned"] <= (50 if quick else 20),
        "tuned_pickup_sooner": f["pickup_p50_ms_tuned"] < f["pickup_p50_ms_default"],
        "tuned_idle_cpu": f["idle_cpu_pct_tuned"] > f["idle_cpu_pct_default"],
        "process_thumbnails": f["process_over_thread_thumbnail"] >= (0.5 if quick else 1.15),
        "process_email": f["process_over_thread_email"] < 1.15,
        "tasks_backends": (f["djtasks_statuses"] == {"huey": [202], "immediate": [200]}
                           and f["djtasks_response_p50_ms_immediate"] >= 5 * f["djtasks_response_p50_ms_huey"]),
        "djtasks_enqueue_cost": f["enqueue_p50_us_djtasks"] > f["enqueue_p50_us_native"],
    }, quick)
