"""Published queue benchmarks as data with their sources, and their procedures made again on the lab's backends.

python_queue_benchmark (steventen) times 20,000 no-op jobs drained by 10 workers on a Redis broker, from the worker
command's start to the last job; threadmill's README charts tasks per second of one worker process with one thread
over 5,000 trivial tasks. Every figure here carries the URL and commit it was read from; a figure the lab reproduces
is measured by the lab's own procedures (helpers.protocols.drain, helpers.instruments.queue_semantics).
"""

from __future__ import annotations

import importlib.metadata
import time
from dataclasses import replace
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from helpers.instruments import queue_semantics
from helpers.instruments.queue_probe import drain_rate
from helpers.protocols import drain

if TYPE_CHECKING:
    from helpers.stack import Lab

PQB_REPO = "https://github.com/steventen/python_queue_benchmark"
PQB_FIRST = "9878b88ae1816b31dcafd338165bab89cde3bfab"  # 2024-06-16 "Init commit": most figures
PQB_AMENDED = "05ba968f3d2996d0415db469ce708fd066a747fe"  # 2024-06-16 "Update readme": Huey processes, Dramatiq 10x1

PYTHON_QUEUE_BENCHMARK = {
    "source": PQB_REPO,
    "method": f"{PQB_REPO}/blob/{PQB_AMENDED}/README.md#test-method",
    "jobs": 20_000,
    "workers": 10,
    "machine": "MacBook Pro 14 inch, M2 Pro, 16 GB",
    "broker": "Redis 7 (redis:7-alpine in Docker), every library",
    "job": "prints its number and the time (stdout)",
    "timed": "from just before the worker command starts to the last job's printed finish time",
    # pdm.lock at the first commit (pyproject asked for >= these; the lock pinned them)
    "versions": {"rq": "1.16.2", "celery": "5.4.0", "kombu": "5.3.7", "huey": "2.5.1", "dramatiq": "1.17.0",
                 "redis-py": "4.6.0", "python": "3.12"},
    "versions_source": f"{PQB_REPO}/blob/{PQB_FIRST}/pdm.lock",
}


def _pqb(library: str, setting: str, command: str, seconds: float, workers: int, commit: str,
         enqueue_s: float | None) -> dict:
    return {"library": library, "setting": setting, "command": command, "seconds": seconds, "workers": workers,
            "enqueue_s": enqueue_s, "source": f"{PQB_REPO}/blob/{commit}/README.md", "commit": commit}


# One row per README result: seconds to drain the 20,000 jobs, and the time it took to enqueue them.
PQB_DRAINS: dict[str, dict] = {
    "rq": _pqb("RQ", "10 worker processes (a work horse forked per job)", "rq worker-pool -q -n 10", 51.05, 10,
               PQB_FIRST, 4.03),
    "celery_threads": _pqb("Celery", "10 threads", "celery -A tasks worker -c 10 -P threads", 11.68, 10,
                           PQB_FIRST, 6.34),
    "celery_processes": _pqb("Celery", "10 processes (prefork)", "celery -A tasks worker -c 10 -P processes",
                             17.60, 10, PQB_FIRST, 6.34),
    "huey_threads": _pqb("Huey", "10 threads", "huey_consumer.py tasks.huey -k thread -w 10 -d 0.001 -C -q", 4.15,
                         10, PQB_FIRST, 2.40),
    "huey_processes": _pqb("Huey", "10 processes", "huey_consumer.py tasks.huey -k process -w 10 -d 0.001 -C -q",
                           3.62, 10, PQB_AMENDED, 2.40),
    "dramatiq_1x10": _pqb("Dramatiq", "1 process, 10 threads", "dramatiq tasks -p 1 -t 10", 4.12, 10, PQB_FIRST,
                          3.27),
    "dramatiq_10x1": _pqb("Dramatiq", "10 processes, 1 thread", "dramatiq tasks -p 10 -t 1", 4.35, 10,
                          PQB_AMENDED, 3.27),
    # Dramatiq's defaults on that machine: 10 processes x 8 threads = 80 workers, not 10
    "dramatiq_default": _pqb("Dramatiq", "defaults: 10 processes, 8 threads (80 workers)", "dramatiq tasks", 1.53,
                             80, PQB_FIRST, 3.27),
}

# The benchmark's Dramatiq keeps no task states; the lab's records each message's state in the site's database
# (labsite.dramatiq_states): left out here, measured with it by giving the setting's changes without this.
NO_DRAMATIQ_STATES = {"LAB_DRAMATIQ_TASK_STATES": "0"}

# How the lab makes each README setting: its backend, and the LabConfig changes for the workers (`workers` is put
# in where the setting's count of workers goes). Huey's -q is the log level WARNING (no line per task).
PQB_IN_LAB: dict[str, dict] = {
    "rq": {"backend": "rq_redis", "workers_field": "consumer_workers", "changes": {}},
    "celery_threads": {"backend": "celery_redis", "workers_field": "consumer_workers",
                       "changes": {"celery_pool": "threads"}},
    "celery_processes": {"backend": "celery_redis", "workers_field": "consumer_workers",
                         "changes": {"celery_pool": "prefork"}},
    "huey_threads": {"backend": "huey_redis", "workers_field": "consumer_workers",
                     "changes": {"consumer_worker_type": "thread", "consumer_initial_delay_s": 0.001,
                                 "huey_health_check": False, "huey_log_level": "WARNING"}},
    "huey_processes": {"backend": "huey_redis", "workers_field": "consumer_workers",
                       "changes": {"consumer_worker_type": "process", "consumer_initial_delay_s": 0.001,
                                   "huey_health_check": False, "huey_log_level": "WARNING"}},
    "dramatiq_1x10": {"backend": "dramatiq_rabbitmq", "workers_field": "consumer_workers",
                      "changes": {"consumer_processes": 1, "site_env": NO_DRAMATIQ_STATES}},
    "dramatiq_10x1": {"backend": "dramatiq_rabbitmq", "workers_field": "consumer_processes",
                      "changes": {"consumer_workers": 1, "site_env": NO_DRAMATIQ_STATES}},
}

# The README setting each backend is compared on by default: the one DESIGN.md quotes, or for Dramatiq the one with
# 10 workers (its 1.53 s ran 80)
PQB_DEFAULT_SETTING = {"rq_redis": "rq", "celery_redis": "celery_threads", "huey_redis": "huey_processes",
                       "dramatiq_rabbitmq": "dramatiq_1x10"}

# What differs between the README's run and the lab's, per library (besides the machine: 2 shared cores here)
PQB_DIFFERENCES: dict[str, list[str]] = {
    "all": ["machine: 2 cores shared with the lab's servers and other work here, an M2 Pro (8+4 cores) there",
            "job: the lab's no-op returns at once; the benchmark's prints a line to the worker's terminal",
            "enqueue: through the site's own code in one Django process (manage.py enqueue_noop), not a bare script",
            "end: the lab stops the clock when the queue is empty (a worker may still hold prefetched no-ops); the "
            "benchmark at the last job's printed time"],
    "RQ": ["jobs go through django-tasks-rq (Django's Tasks API, its Job class) with rq 3, not plain RQ 1.16",
           "each work horse is forked from a worker that loaded Django and the site",
           "the lab's rqworker-pool logs three lines per job (INFO); the README's ran with -q"],
    "Celery": ["the benchmark stores every result in Redis (result_backend); the lab's Celery on Redis has no "
               "result backend", "Celery 5.7 here, 5.4 there"],
    "Huey": ["Huey 3.5 through djhuey's run_huey here, Huey 2.5's huey_consumer.py there"],
    "Dramatiq": ["broker: RabbitMQ here (the lab's Dramatiq backend), Redis there",
                 "the lab's task-state record (a row per message in the site's SQLite, written on enqueue and by "
                 "the worker) is left out, as the benchmark has none (NO_DRAMATIQ_STATES)",
                 "Dramatiq 2.2 through django-dramatiq's rundramatiq here, Dramatiq 1.17 there"],
}


THREADMILL_REPO = "https://github.com/codingjoe/threadmill"
THREADMILL_README = "02c168f39df1286036e7618416c8ea4f64cadf74"  # the README whose chart this table is


def _threadmill(queue: str, per_s: float, worker: str) -> dict:
    return {"queue": queue, "tasks_per_s": per_s, "worker": worker, "commit": THREADMILL_README,
            "source": f"{THREADMILL_REPO}/blob/{THREADMILL_README}/README.md"}


THREADMILL_METHOD = {
    "source": f"{THREADMILL_REPO}/blob/{THREADMILL_README}/benchmarks/test_backends.py",
    "tasks": 5_000,
    "task": "echo: returns its argument",
    "worker": "one worker process, one thread, one message at a time (no prefetch)",
    "throughput": "tasks / (seconds to drain 5,000 - seconds to start a worker and run 1): the busy queue's rate",
    "broker": "one Redis server for threadmill, django-tasks-redis and Celery; django-tasks-db on the test database",
    "python": "3.14 (threadmill 0.4 and later require it)",
}

# The README's chart: tasks per second with one worker, highest first.
THREADMILL_ONE_WORKER: dict[str, dict] = {
    "threadmill": _threadmill("threadmill", 4989.0, "threadmill worker --workers 1 --exit-empty"),
    "celery": _threadmill("celery", 2363.0, "celery worker --pool=solo --prefetch-multiplier=1"),
    "django-tasks-db": _threadmill("django-tasks-db", 2179.0, "db_worker --batch --interval 0.01"),
    "django-tasks-redis": _threadmill("django-tasks-redis", 1712.0, "run_redis_tasks"),
}


# How the lab makes each row of the chart: its backend and the LabConfig changes for one worker reading one message at
# a time. django-tasks-redis has no lab backend: its row is not reproduced.
THREADMILL_IN_LAB: dict[str, dict] = {
    "threadmill": {"backend": "threadmill_redis", "changes": {"consumer_workers": 1, "consumer_worker_type": "thread"}},
    "celery": {"backend": "celery_redis",
               "changes": {"consumer_workers": 1, "celery_pool": "solo",
                           "site_env": {"LAB_CELERY_PREFETCH_MULTIPLIER": "1"}}},
    "django-tasks-db": {"backend": "djtasks_db_sqlite", "changes": {"consumer_workers": 1, "poll_interval_s": 0.01}},
}

THREADMILL_DIFFERENCES: dict[str, list[str]] = {
    "all": ["machine: 2 shared cores here; the README names none",
            "Python 3.13 and threadmill 0.3.1 here (0.4 and later need Python 3.14), Python 3.14 there",
            "task: the lab's no-op, enqueued through the site's code; the chart's echo returns its argument",
            "end: the lab stops the clock when the queue is empty; the chart when an --exit-empty worker exits "
            "(threadmill, django-tasks-db) or a sentinel task ran (Celery)"],
    "threadmill": ["0.3.1 has no prefetch (--prefetch-count came later): one message at a time, as the chart's "
                   "footnote says of threadmill"],
    "celery": ["the chart's worker runs --without-gossip --without-mingle --without-heartbeat; the lab's does not"],
    "django-tasks-db": ["on the run's SQLite file here; the chart's test database there",
                        "no --batch: the lab's worker keeps running and the clock stops at the empty queue"],
}


def pqb_setting(lab: Lab, setting: str | None = None) -> str:
    """The README setting a drain on `lab` reproduces: `setting`, checked against the lab's backend, or the
    backend's default one."""
    setting = setting or PQB_DEFAULT_SETTING.get(lab.queue.name)
    if setting is None:
        raise ValueError(f"python_queue_benchmark covers no backend like {lab.queue.name!r}; "
                         f"it covers {', '.join(PQB_DEFAULT_SETTING)}")
    if PQB_IN_LAB[setting]["backend"] != lab.queue.name:
        raise ValueError(f"setting {setting!r} runs on {PQB_IN_LAB[setting]['backend']}, not {lab.queue.name}")
    return setting


def lab_versions(library: str) -> dict[str, str]:
    """The versions installed here of what the README's run used for `library`."""
    packages = {"RQ": ["rq", "django-tasks-rq"], "Celery": ["celery", "kombu"], "Huey": ["huey"],
                "Dramatiq": ["dramatiq", "django-dramatiq", "pika"]}[library] + ["redis"]
    return {name: importlib.metadata.version(name) for name in packages}


def timed_drain(lab: Lab, jobs: int, timeout_s: float = 300.0, **consumer_changes) -> dict:
    """`jobs` no-op tasks enqueued with the workers stopped (queue_semantics.enqueue_noop), then the workers started
    with `consumer_changes` (drain.sampled) and timed until the queue is empty; then the lab's workers start again as
    they were. Returns: seconds (from the workers' start, which it includes, to the empty queue),
    seconds_after_ready (from the last worker's ready line), worker_start_s, drain_per_s (90 % to 10 % of the peak;
    NaN for a backlog too small to read a rate off), enqueue_s, enqueue_api."""
    if "site_env" in consumer_changes:  # added to the lab's own, not instead
        consumer_changes = {**consumer_changes, "site_env": {**lab.config.site_env, **consumer_changes["site_env"]}}
    before = {field: getattr(lab.config, field) for field in consumer_changes}
    lab.stop_consumer()
    lab.config = replace(lab.config, **consumer_changes)  # the enqueue too runs with them (site_env: its settings)
    enqueued = queue_semantics.enqueue_noop(lab, jobs)
    began = time.time()  # the workers are stopped: sampled() starts them at once
    depth = drain.sampled(lab, timeout_s, **consumer_changes)
    emptied = depth[(depth.index >= depth["depth"].idxmax()) & (depth["depth"] == 0)]
    empty_at = float(emptied["t"].iloc[0]) if len(emptied) else float("nan")
    figures = {"seconds": empty_at - began, "seconds_after_ready": empty_at - lab.consumers_ready_at,
               "worker_start_s": lab.consumer_start_s,
               "drain_per_s": drain_rate(depth) if depth["depth"].max() >= 10 else float("nan"),
               "enqueue_s": float(enqueued["seconds"]), "enqueue_api": enqueued.get("api")}
    lab.start_consumer(**before)
    return figures


def drain_like_python_queue_benchmark(lab: Lab, jobs: int = 20_000, workers: int = 10, setting: str | None = None,
                                      timeout_s: float = 300.0) -> dict:
    """python_queue_benchmark's drain on the lab's backend (timed_drain): `jobs` no-op tasks, then `workers` workers
    in the README setting's model (PQB_IN_LAB; by default the backend's PQB_DEFAULT_SETTING).

    Returns timed_drain's figures and: setting, backend, library, jobs, workers, published_setting, worker_config
    (the LabConfig changes), published_seconds and published_enqueue_s (None unless jobs and workers are the
    README's), jobs_per_s and published_jobs_per_s (jobs over seconds, start included: comparable for a smaller
    `jobs`, None unless workers are the README's), published_source, ratio (seconds over published), differences,
    versions, published_versions."""
    setting = pqb_setting(lab, setting)
    model, published = PQB_IN_LAB[setting], PQB_DRAINS[setting]
    changes = {**model["changes"], model["workers_field"]: workers}
    figures = timed_drain(lab, jobs, timeout_s, **changes)
    same_size = jobs == PYTHON_QUEUE_BENCHMARK["jobs"] and workers == published["workers"]
    library = published["library"]
    return {"setting": setting, "backend": lab.queue.name, "library": library, "jobs": jobs, "workers": workers,
            "published_setting": published["setting"], "worker_config": changes, **figures,
            "published_seconds": published["seconds"] if same_size else None,
            "published_enqueue_s": published["enqueue_s"] if same_size else None,
            "jobs_per_s": jobs / figures["seconds"],
            "published_jobs_per_s": (PYTHON_QUEUE_BENCHMARK["jobs"] / published["seconds"]
                                     if workers == published["workers"] else None),
            "published_source": published["source"],
            "ratio": figures["seconds"] / published["seconds"] if same_size else None,
            "differences": PQB_DIFFERENCES["all"] + PQB_DIFFERENCES[library],
            "versions": lab_versions(library), "published_versions": PYTHON_QUEUE_BENCHMARK["versions"]}


def one_worker_like_threadmill(lab: Lab, tasks: int = 5_000, timeout_s: float = 300.0) -> dict:
    """threadmill's one-worker throughput on the lab's backend: one worker (one process, one thread, one message at
    a time: THREADMILL_IN_LAB) timed from its start to the empty queue, once on one task (start_s) and once on
    `tasks` (process_s); tasks_per_s = tasks / (process_s - start_s), as the README's chart computes it.

    Returns: queue, backend, tasks, start_s, process_s, tasks_per_s, drain_per_s (the lab's own rate, 90 % to 10 %
    of the peak), enqueue_s, published_tasks_per_s (None unless tasks is the README's), published_source,
    differences."""
    queue = next((q for q, model in THREADMILL_IN_LAB.items() if model["backend"] == lab.queue.name), None)
    if queue is None:
        raise ValueError(f"threadmill's chart has no queue like {lab.queue.name!r}; it covers "
                         f"{', '.join(model['backend'] for model in THREADMILL_IN_LAB.values())}")
    changes = THREADMILL_IN_LAB[queue]["changes"]
    start = timed_drain(lab, 1, timeout_s, **changes)
    full = timed_drain(lab, tasks, timeout_s, **changes)
    published = THREADMILL_ONE_WORKER[queue]
    return {"queue": queue, "backend": lab.queue.name, "tasks": tasks, "start_s": start["seconds"],
            "process_s": full["seconds"], "tasks_per_s": tasks / (full["seconds"] - start["seconds"]),
            "drain_per_s": full["drain_per_s"], "enqueue_s": full["enqueue_s"],
            "published_tasks_per_s": published["tasks_per_s"] if tasks == THREADMILL_METHOD["tasks"] else None,
            "published_source": published["source"],
            "differences": THREADMILL_DIFFERENCES["all"] + THREADMILL_DIFFERENCES[queue]}


def compare_orderings(ours: dict[str, float], published: dict[str, float], higher_is_better: bool = False) -> dict:
    """Rank both sets of figures on the names they share (1 = best: fastest time, or highest rate with
    `higher_is_better`) and say whether the orderings agree. Returns: names, ours_rank, published_rank, agree,
    kendall_tau and spearman_rho (scipy; NaN under 2 names), swapped (pairs ordered one way in ours, the other in
    the published figures), only_ours, only_published."""
    from scipy import stats

    names = [name for name in published if name in ours]
    sign = -1.0 if higher_is_better else 1.0

    def ranks(figures: dict[str, float]) -> dict[str, int]:
        ordered = sorted(names, key=lambda name: sign * figures[name])
        return {name: ordered.index(name) + 1 for name in names}

    ours_rank, published_rank = ranks(ours), ranks(published)
    swapped = [(a, b) for a, b in combinations(names, 2)
               if (ours[a] - ours[b]) * (published[a] - published[b]) < 0]
    enough = len(names) >= 2
    mine, theirs = [ours_rank[n] for n in names], [published_rank[n] for n in names]
    return {"names": names, "ours_rank": ours_rank, "published_rank": published_rank, "agree": not swapped,
            "kendall_tau": float(stats.kendalltau(mine, theirs).statistic) if enough else float("nan"),
            "spearman_rho": float(stats.spearmanr(mine, theirs).statistic) if enough else float("nan"),
            "swapped": swapped, "only_ours": sorted(set(ours) - set(published)),
            "only_published": sorted(set(published) - set(ours))}


def one_lab_per_row(measure, backends: dict[str, str], run_dir: Path | None = None, **lab_config) -> pd.DataFrame:
    """`measure(lab, row)` for each row of `backends` (row -> queue backend), one lab at a time (helpers.stack.Lab
    with `lab_config` and a fast SMTP server, in run_dir/row); adds lab_start_s and wall_s (lab start to stop)."""
    from helpers.stack import Lab

    rows = []
    for row, backend in backends.items():
        began = time.monotonic()
        with Lab(run_dir=run_dir / row if run_dir else None, queue_backend=backend, smtp_delay_s=0,
                 **lab_config) as lab:
            lab_start_s = time.monotonic() - began
            figures = measure(lab, row)
        rows.append({**figures, "lab_start_s": lab_start_s, "wall_s": time.monotonic() - began})
    return pd.DataFrame(rows)


def python_queue_benchmark_table(settings: list[str] | None = None, jobs: int | dict[str, int] = 20_000,
                                 workers: int = 10, run_dir: Path | None = None) -> pd.DataFrame:
    """drain_like_python_queue_benchmark for each README setting (by default one per backend, PQB_DEFAULT_SETTING),
    one lab at a time, with `jobs` tasks (or jobs[setting], 20,000 where it names none: a slow backend can drain
    fewer and be compared on jobs_per_s); one row per setting, indexed by it."""
    settings = settings or list(PQB_DEFAULT_SETTING.values())

    def jobs_for(setting: str) -> int:
        return jobs.get(setting, PYTHON_QUEUE_BENCHMARK["jobs"]) if isinstance(jobs, dict) else jobs

    table = one_lab_per_row(lambda lab, setting: drain_like_python_queue_benchmark(lab, jobs_for(setting), workers,
                                                                                   setting),
                            {setting: PQB_IN_LAB[setting]["backend"] for setting in settings}, run_dir)
    return table.set_index("setting")


def threadmill_table(tasks: int = 5_000, run_dir: Path | None = None) -> pd.DataFrame:
    """one_worker_like_threadmill for every row of the chart the lab has (THREADMILL_IN_LAB), one lab at a time; one
    row per queue, indexed by it."""
    table = one_lab_per_row(lambda lab, queue: one_worker_like_threadmill(lab, tasks),
                            {queue: model["backend"] for queue, model in THREADMILL_IN_LAB.items()}, run_dir)
    return table.set_index("queue")
