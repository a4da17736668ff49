"""The findings at a glance, generated from what was measured: `python -m helpers report` (and `make report`).

- README.md's block between FINDINGS_START and FINDINGS_END: the article's claims one by one, then what it leaves
  out, each with what the lab measured, the notebooks' verdict lines behind it, its chart and the notebook that shows
  it. Every number comes from data/reference/ (its summary.json, its notebooks' run.json, and any committed benchmark
  run of the same figures); the verdict lines are each notebook's verdict() called on its recorded figures, its
  claims picked by their keys (no claim text is written here); the headline charts are the reference run's own PNGs,
  copied to docs/findings/. `--check` writes nothing and fails when the README or a chart is stale
  (tests/test_report.py runs it).
- index.html of the latest run (the newest data/runs/*-rerun/, else the reference): the same findings table, with
  links to each notebook's HTML export and every chart.

A figure found in one run is printed as such; a figure found in several committed runs (a notebook's and its
benchmark's) is printed as their range with the number of runs it spans.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from helpers import REPO_ROOT
from helpers.charts.common import noun_for, number
from helpers.instruments.browser import THRESHOLDS_MS
from helpers.runs import compare, guide, verdicts
from helpers.runs.folders import runs_root

REFERENCE_DIR = REPO_ROOT / "data" / "reference"
README = REPO_ROOT / "README.md"
DETAILS = REPO_ROOT / "docs" / "findings.md"  # every finding with its figures, table, chart and verdict lines
CHARTS_DIR = REPO_ROOT / "docs" / "findings"
REPORT_DIR = REPO_ROOT / "docs" / "report"  # the reference's HTML report, committed: open it without running anything
TIMINGS = "timings.json"  # data/reference/timings.json: how long a command took, measured (the README quotes it)
TIMED_TEST, TIMED_TEST_BUSY = "make test", "make test, one core busy"  # its records, by helpers.runs.time_test
FINDINGS_START = "<!-- findings:start -->"
FINDINGS_END = "<!-- findings:end -->"


def bench_notebook(benchmark: str | None) -> str | None:
    """The notebook whose figures a benchmark repeats: the one its experiments module serves (by name or alias). A
    committed benchmark run (data/reference/bench-NAME/run.json) reports that notebook's key_figures() under the same
    names: its figures join the notebook's as another run."""
    from helpers.runs import bench

    bench.discover()
    module = bench.ALIASES.get(benchmark, benchmark)
    return {name: notebook for notebook, name in {**verdicts.MODULES, **verdicts.AWAITING_REFERENCE}.items()
            }.get(module)


QUEUE_NOTEBOOK = "07-which-queue"  # the backend matrix: Celery, RQ, Huey, django-tasks-db on one harness
MATRIX = "Celery, RQ, Huey and Django's task backends side by side"


# -- what was measured ------------------------------------------------------------------------------------------------


@dataclass
class Measured:
    """One run's figures, parameters and verdicts by notebook, its chart files, and the other committed runs whose
    figures overlap its own (benchmark runs: their values widen a figure into a range)."""

    label: str
    summary: dict
    verdicts: dict[str, dict[str, bool | None]]  # notebook -> claim -> held (None: not checked in quick mode)
    charts: dict[str, Path]  # "<notebook>-figNN" -> PNG
    html: dict[str, Path] = field(default_factory=dict)  # notebook -> its executed HTML export
    other_runs: dict[str, list[dict]] = field(default_factory=dict)  # notebook -> figures of other runs

    @property
    def notebooks(self) -> dict:
        return self.summary.get("notebooks", {})

    def values(self, notebook: str, name: str) -> list:
        """Every run's value of one figure, this run's first; KeyError when this run has none."""
        value = self.notebooks.get(notebook, {}).get("figures", {}).get(name)
        if value is None:
            raise KeyError(f"{notebook}: {name}")
        others = [figures[name] for figures in self.other_runs.get(notebook, []) if figures.get(name) is not None]
        return [value, *others]

    def parameter(self, notebook: str, name: str):
        return self.notebooks[notebook]["parameters"][name]

    def started(self) -> str:
        return datetime.fromtimestamp(self.summary["started_at"], UTC).strftime("%Y-%m-%d")

    def minutes(self) -> float | None:
        finished = self.summary.get("finished_at")
        return (finished - self.summary["started_at"]) / 60 if finished else None

    def notebook_seconds(self) -> float | None:
        """Every notebook's own full-mode seconds, summed: what `make run` takes, whichever runs they came from."""
        seconds = [entry.get("seconds") for entry in self.notebooks.values()]
        return float(sum(seconds)) if seconds and None not in seconds else None

    def tally(self) -> tuple[int, int]:
        """(claims that held, claims checked) over every notebook; a claim not checked in quick mode counts in
        neither."""
        held = [ok for checks in self.verdicts.values() for ok in checks.values() if ok is not None]
        return sum(held), len(held)


def _charts(folder: Path) -> dict[str, Path]:
    return {path.stem: path for path in sorted(folder.glob("*.png"))}


def judged(notebook: str, entry: dict) -> dict[str, bool | None]:
    """The notebook's verdict() on its recorded figures (quick or full as it ran); what it recorded for a run whose
    figures lack one the verdict reads (an older run), or for a notebook without a verdict()."""
    try:
        return verdicts.judge(notebook, entry["figures"], quick=bool(entry.get("parameters", {}).get("quick")))
    except KeyError:
        return entry.get("verdict") or {}


def reference(folder: Path = REFERENCE_DIR) -> Measured:
    """The committed reference: summary.json, each notebook's run.json (its figures, judged) and charts under
    full-run/, and the benchmark runs committed beside it (bench-NAME/run.json)."""
    summary = compare.load_summary(folder / "summary.json")
    judgements = {path.name.removesuffix(".run.json"): judged(path.name.removesuffix(".run.json"),
                                                              json.loads(path.read_text()))
                  for path in sorted((folder / "full-run").glob("*.run.json"))}
    other_runs: dict[str, list[dict]] = {}
    for path in sorted(folder.glob("bench-*/run.json")):
        meta = json.loads(path.read_text())
        notebook = bench_notebook(meta.get("benchmark"))
        if notebook:
            other_runs.setdefault(notebook, []).append(meta.get("figures", {}))
    exports = {path.stem: path for path in sorted((folder / "full-run" / "html").glob("*.html"))}
    return Measured("the committed reference run", summary, judgements, _charts(folder / "full-run" / "figures"),
                    exports, other_runs=other_runs)


def rerun(run_dir: Path) -> Measured:
    """A rerun folder (`python -m helpers run`): summary.json, whose notebooks carry their figures (older reruns:
    read from each notebook's experiment folder), judged; figures/*.png and the HTML exports."""
    summary = compare.load_summary(run_dir / "summary.json")
    judgements = {}
    for name, entry in summary.get("notebooks", {}).items():
        meta = run_dir / entry.get("experiment_dir", "-") / "run.json"
        if "figures" not in entry and meta.is_file():
            entry = json.loads(meta.read_text())
        judgements[name] = judged(name, entry) if "figures" in entry else entry.get("verdict") or {}
    exports = {name: run_dir / entry["html"] for name, entry in summary.get("notebooks", {}).items()
               if entry.get("html") and (run_dir / entry["html"]).exists()}
    return Measured(f"rerun {run_dir.name}", summary, judgements, _charts(run_dir / "figures"), exports)


# -- how figures read (number(): helpers.charts.common) --------------------------------------------------------------


class Figures:
    """Reads figures for one finding's text and remembers whether any of them spanned several runs."""

    def __init__(self, measured: Measured):
        self.measured = measured
        self.spans: set[int] = set()

    def __call__(self, notebook: str, name: str, unit: str = "", scale: float = 1.0) -> str:
        values = [v * scale for v in self.measured.values(notebook, name)]
        low, high = number(min(values)), number(max(values))
        unit = f" {unit}" if unit and unit not in "%x" else unit
        text = f"{low}{unit}" if low == high else f"{low}-{high}{unit}"
        if len(values) > 1:
            self.spans.add(len(values))
            text += f" ({len(values)} runs)"
        return text

    def count(self, notebook: str, name: str, noun: str) -> str:
        """A count with its noun, plural unless every run counted exactly one: "1 task", "36 tasks", "1-2 tasks"."""
        values = self.measured.values(notebook, name)
        return f"{self(notebook, name)} {noun_for(1 if set(values) == {1} else 2, noun)}"

    def raw(self, notebook: str, name: str):
        return self.measured.values(notebook, name)[0]

    def runs_note(self) -> str:
        if not self.spans:
            return "One run."
        spans = " or ".join(str(n) for n in sorted(self.spans))
        return f"One run, but for the ranges ({spans} runs, as marked)."


# -- the findings ----------------------------------------------------------------------------------------------------


# `{NN.figure unit *scale}`: notebook NN's figure from the run (a range when several runs hold it), with its unit and
# an optional scale; `{NN.figure #noun}`: a count with its noun, singular or plural as counted; `{NN.param:name unit
# *scale}`: one of its parameters (a knob, not a measurement); `{name}`: a phrase a finding's `phrases` function builds
# from the run.
PLACEHOLDER = re.compile(r"\{(\d\d)\.(param:)?(\w+)(?: ([^}*]+?))?(?: \*(\d+))?\}")


def fill(template: str, figures: Figures, phrases: Callable[[Figures], dict] | None = None) -> str:
    """The template with every placeholder replaced from the run; KeyError when the run lacks one."""

    def one(match: re.Match) -> str:
        prefix, parameter, name, unit, scale = match.groups()
        notebook = next((nb for nb in figures.measured.notebooks if nb.startswith(f"{prefix}-")), None)
        if notebook is None:
            raise KeyError(prefix)
        if parameter:
            value = number(figures.measured.parameter(notebook, name) * float(scale or 1))
            return f"{value} {unit}" if unit else value
        if unit and unit.startswith("#"):
            return figures.count(notebook, name, unit[1:])
        return figures(notebook, name, unit or "", float(scale or 1))

    text = PLACEHOLDER.sub(one, template)
    return text.format(**phrases(figures)) if phrases else text


@dataclass
class Finding:
    """One claim of the article (or one thing it leaves out), what answers it, and where the evidence is."""

    title: str
    short: str  # the answer in the findings table
    answer: str  # the lab's answer in words, stated only when every check behind it held; no measured number
    checks: dict[str, list[str]]  # notebook -> keys of claims in its experiments module's CLAIMS
    measured: str  # what the run measured: a template (see PLACEHOLDER)
    chart: str | None = None  # "<notebook>-figNN" of the reference
    chart_file: str | None = None  # its name under docs/findings/
    alt: str = ""
    quote: bool = True  # the article's own claim (quoted) or something it leaves out
    phrases: Callable[[Figures], dict] | None = None  # `{name}`s of measured, short and answer, built from the run
    table: Callable[[Figures], tuple[list[str], list[list[str]]] | None] | None = None  # (columns, rows) from the run

    def claim_keys(self) -> list[tuple[str, str]]:
        """(notebook, claim key) of every check, in order."""
        return [(notebook, key) for notebook, keys in self.checks.items() for key in keys]


RESPONSE_TIME = (
    "Median response with a {01.param:smtp_delay_s ms *1000} SMTP provider (a parameter): blocking "
    "{01.blocking_p50_ms ms}, deferred {01.deferred_p50_ms ms} ({01.speedup_blocking_deferred_p50 x} less), a no-op "
    "view {01.noop_p50_ms ms}; {01.emails_received} of {01.emails_requested} emails arrived. A CPU-bound thumbnail: "
    "blocking {03.thumbnail_blocking_p50_ms ms}, deferred {03.thumbnail_deferred_p50_ms ms}.")
SERVER_THREAD = (
    "Blocking view, {02.param:web_workers} sync workers, S = {02.service_s ms *1000} per request: throughput levels "
    "off at {02.saturation_throughput requests/s} against c/S = {02.capacity_c_over_s requests/s}, and p99 reaches "
    "{02.blocking_p99_ms_highest_rate ms} at the highest rate; the deferred view's p99 is "
    "{02.deferred_p99_ms_at_saturation ms} where blocking saturates. With a slower provider "
    "({08.param:smtp_delay_s ms *1000}), the blocking send saturates at {08.sync_saturation_rps requests/s} while the "
    "deferred view under gunicorn {deferred_verb} {08.deferred_gunicorn_saturation_rps requests/s}.")
INP = (
    "Median INP (Core Web Vitals: good up to {inp_good_ms} ms), sent with fetch(): blocking {04.inp_blocking_ms ms}, "
    "deferred {04.inp_deferred_ms ms}: the page paints before the server answers. What deferring moves: a form "
    "post's TTFB, {04.ttfb_blocking_ms ms} blocking against {04.ttfb_deferred_ms ms} deferred, and with fetch() the "
    "answer on screen {04.feedback_blocking_ms ms} against {04.feedback_deferred_ms ms} after the click. Only a page "
    "that waits on its main thread (a synchronous request) carries the server's time into INP: "
    "{04.inp_xhr_blocking_ms ms} against {04.inp_xhr_deferred_ms ms}.")
QUEUE_IS_THE_FIX = (
    "{05.faults_injected #fault} injected under load ({05.kills #consumer kill}; transient: SMTP 4xx, dropped "
    "connections, a provider stalling each command, a web server crash; permanent: 550 for unknown users) on "
    "{designs_backends}, four designs of the same email side by side, {05.emails_requested} emails requested in all. "
    "{design_summary} The ledger ended {05.permanent_failed} of {05.permanent_requested} emails to unknown users "
    "`failed` and confirmed {05.confirmed_by_provider #kill} between the provider's 250 and its commit with the "
    "provider, instead of sending twice.")
WORK_STILL_HAPPENS = (
    "End to end (enqueue to sent), the email's median is {03.email_end_to_end_p50_ms ms} against "
    "{03.email_blocking_p50_ms ms} blocking ({03.email_end_to_end_over_blocking x}). Arrivals at "
    "{03.backlog_arrival_rate tasks/s} against a consumer draining {03.backlog_capacity_per_s tasks/s}: the queue "
    "peaked at {03.backlog_peak_sampled} tasks (fluid model: {03.backlog_peak_predicted}) and the last task waited "
    "{03.backlog_last_wait_ms ms} (the first {03.backlog_first_wait_ms ms}). Under an overload an unbounded queue "
    "reached {05.overload_max_depth_unbounded} tasks and took {05.overload_drain_s_unbounded s} to drain after it; "
    "bounded at {05.overload_bound}, the site answered {05.overload_shed_503} requests 503 with Retry-After instead.")
PICKUP = (
    "After up to {03.pickup_idle_max_s s} idle, Huey's default SQLite polling starts a task "
    "{03.pickup_p50_ms_default ms} after its enqueue at the median (worst {03.pickup_max_ms_default ms}); tuned "
    "polling {03.pickup_p50_ms_tuned ms}, for {03.idle_cpu_pct_tuned %} of a core idle against "
    "{03.idle_cpu_pct_default %}; Redis's blocking pop {06.huey_redis_pickup_enqueue_to_start_p50_ms ms}. In the "
    "browser, the deferred email shows as sent {04.delivered_deferred_ms ms} after the click, the blocking one "
    "{04.delivered_blocking_ms ms}.")
CRASH = (
    "{05.kills #SIGKILL} of the consumers lost {05.kill_lost_plain #task} of the plain design, no more than the "
    "workers held (bound {05.kill_loss_bound}): Huey removes a task from SQLite when a worker picks it up, Celery "
    "acknowledges it as it starts by default, django-tasks-db leaves it RUNNING. A crashed web server failed "
    "{05.web_restart_failed_requests} requests and lost {05.web_restart_lost} accepted emails. With the ledger "
    "nothing accepted was lost ({05.ledger_reenqueued} jobs enqueued again by the reconciler).")
WHICH_QUEUE = (
    "{queue_run}{queue_table_note} Huey alone (notebook 06): a direct enqueue {06.huey_sqlite_enqueue_p50_us µs} on "
    "SQLite against {06.huey_redis_enqueue_p50_us µs} on Redis (median), one consumer process draining "
    "{06.huey_sqlite_drain_tasks_per_s tasks/s} against {06.huey_redis_drain_tasks_per_s tasks/s}, four processes "
    "{06.huey_sqlite_drain_4_consumers_tasks_per_s tasks/s} (one file lock) against "
    "{06.huey_redis_drain_4_consumers_tasks_per_s tasks/s}.")
PUBLISHED = "Beside it: what the published benchmarks report"  # notebook 07's section (a heading, not a figure)
ASYNC = (
    "The same send in an async view under uvicorn saturates at {08.async_saturation_rps requests/s}, "
    "{08.async_over_sync_saturation x} the sync workers' {08.sync_saturation_rps requests/s}, yet its median response "
    "is still {08.async_p50_ms ms}: the user waits for the SMTP provider either way; deferred: "
    "{08.deferred_p50_ms ms}. When the provider fails, the async view answers 5xx (the user is told); the deferred one "
    "answered 202, then its task failed.")


def _deferred_verb(f: Figures) -> dict:
    ran_away = f.raw("08-does-async-fix-it", "deferred_gunicorn_ran_away")
    return {"deferred_verb": "saturates at" if ran_away else "kept up with the most it was offered,"}


def _inp_threshold(f: Figures) -> dict:
    return {"inp_good_ms": THRESHOLDS_MS["inp"][0]}


def _designs(f: Figures) -> dict:
    """Finding 4's phrases, read from notebook 05's per backend and design figures: what each design lost and
    duplicated, every backend and fault together, and the backends measured."""
    fig = f.measured.notebooks["05-faults"]["figures"]
    backends = fig["backends"]
    parts = []
    for d in fig["designs"]:
        offered = [b for b in backends if fig.get(f"{b}_{d}_requested") is not None]
        if not offered:
            continue
        lost = sum(fig[f"{b}_{d}_lost"] for b in offered)
        duplicated = sum(fig[f"{b}_{d}_duplicated"] for b in offered)
        requested = sum(fig[f"{b}_{d}_requested"] for b in offered)
        where = "" if len(offered) == len(backends) else f" (on {_labels(offered)} only)"
        parts.append(f"{d} lost {number(lost)} and duplicated {number(duplicated)} of {number(requested)}{where}")
    missing = [f"{d} on {_labels([b])}" for d in fig["designs"] for b in backends
               if fig.get(f"{b}_{d}_requested") is None]
    return {"designs_backends": _labels(backends),
            "design_summary": "Every fault together: " + "; ".join(parts) + "."
                              + (f" Not offered: {', '.join(missing)} (no retries in Django's Tasks API)."
                                 if missing else "")}


def _designs_table(f: Figures) -> tuple[list[str], list[list[str]]] | None:
    """Finding 4's table: per backend and design, requested / lost / duplicated / late, from notebook 05."""
    if "05-faults" not in f.measured.notebooks:
        return None
    fig = f.measured.notebooks["05-faults"]["figures"]
    rows = []
    for b in fig["backends"]:
        for d in fig["designs"]:
            if fig.get(f"{b}_{d}_requested") is None:
                rows.append([_backend(b)[0], d, "not offered", "", "", ""])
                continue
            rows.append([_backend(b)[0], d, *(f("05-faults", f"{b}_{d}_{name}")
                                            for name in ("requested", "lost", "duplicated", "late"))])
    return ["Backend", "Design", "Requested", "Lost", "Duplicated", "Late copies"], rows


def _backend(name: str) -> tuple[str, str]:
    """A backend's label and declared delivery: declarations of its class in helpers.stack.queues (run.json records
    the measurements, not these), the name itself for a backend that no longer exists."""
    from helpers.stack import queues

    try:
        cls = queues.backend_class(name)
    except KeyError:
        return name, "?"
    return cls.label, cls.delivery


def _labels(backends: list[str]) -> str:
    names = [f"*{_backend(b)[0]}*" for b in backends]
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names) or "none"


def _queue_rows(f: Figures) -> list[list[str]]:
    """Notebook 07's matrix, one row per backend it measured, every number read through `f` (a figure also found in
    a committed `bench queues` run reads as a range); n/a where the backend has no such figure (no worker)."""
    nb, fig = QUEUE_NOTEBOOK, f.measured.notebooks[QUEUE_NOTEBOOK]["figures"]
    trials = fig["tx_trials"]

    def cell(b: str, name: str, unit: str = "") -> str:
        return "n/a" if fig.get(f"{b}_{name}") is None else f(nb, f"{b}_{name}", unit)

    rows = []
    for b in fig["backends"]:
        label, delivery = _backend(b)
        tuned = ("" if fig.get(f"{b}_tuned_pickup_request_to_smtp_p50_ms") is None
                 else f" (tuned {cell(b, 'tuned_pickup_request_to_smtp_p50_ms')})")
        kills = (f"{cell(b, 'lost_on_kill')} / {cell(b, 'duplicated_on_kill')} / {cell(b, 'stuck_on_kill')} "
                 f"({fig[f'{b}_kills']} kills)" if fig[f"{b}_kills"] else "no worker")
        rows.append([label, delivery, cell(b, "enqueue_cost_us"), cell(b, "pickup_request_to_smtp_p50_ms") + tuned,
                     cell(b, "drain_per_s"), cell(b, "e2e_p99_ms"), kills,
                     f"{cell(b, 'runs_after_rollback')} of {trials}", f"{cell(b, 'runs_before_commit')} of {trials}",
                     cell(b, "worker_mb") if fig[f"{b}_kills"] else "no worker"])
    return rows


QUEUE_COLUMNS = ["Backend", "Delivery (declared)", "Enqueue in the request, µs",
                 "Pickup after idle, p50 ms (default; tuned)", "Drain, tasks/s (one worker)", "End to end p99, ms",
                 "Killed workers: lost / duplicated / stuck", "Ran after a rollback", "Ran before its commit",
                 "Worker memory, MiB"]


def _queue_table(f: Figures) -> tuple[list[str], list[list[str]]] | None:
    if QUEUE_NOTEBOOK not in f.measured.notebooks:
        return None
    return QUEUE_COLUMNS, _queue_rows(f)


def _queue_matrix(f: Figures) -> dict:
    """Notebook 07's run (its own date and commit when it ran apart), and the answers read from its figures: which
    backends lost emails under kills, which picked up first after idle, which ran a rolled-back task."""
    m = f.measured
    if QUEUE_NOTEBOOK not in m.notebooks:
        return {"queue_run": f"{MATRIX}: notebook `{QUEUE_NOTEBOOK}`, which {m.label} ({m.started()}) predates; it "
                             f"holds no figures for it.", "queue_table_note": "", "queue_short": "", "queue_answer": ""}
    entry = m.notebooks[QUEUE_NOTEBOOK]
    fig, own = entry["figures"], entry.get("run", {})
    day = datetime.fromtimestamp(own.get("started_at", m.summary["started_at"]), UTC).strftime("%Y-%m-%d")
    commit = own.get("commit", m.summary["environment"]["git_commit"])[:7]
    backends = fig["backends"]
    workers = [b for b in backends if fig[f"{b}_kills"]]
    lost = [b for b in workers if fig[f"{b}_lost_on_kill"]]
    kept = [b for b in workers if not fig[f"{b}_lost_on_kill"]]
    duplicated = [b for b in kept if fig[f"{b}_duplicated_on_kill"]]
    first = min(workers, key=lambda b: fig[f"{b}_pickup_request_to_smtp_p50_ms"])
    skipped = [b for b in backends if not fig[f"{b}_runs_after_rollback"]]
    copies = sum(fig[f"{b}_duplicated_on_kill"] for b in duplicated)
    kills = (f"killed workers lost emails on {len(lost)} of the {len(workers)} backends with workers, none on "
             f"{_labels(kept)}" + (f" ({'it' if duplicated == kept else _labels(duplicated)} sent {number(copies)} "
                                   f"email{'s' if copies != 1 else ''} twice instead)" if copies else ""))
    pickup = f"{_labels([first])} picked up first after idle"
    rollback = f"a rolled-back task never ran only on {_labels(skipped)}"
    return {
        "queue_run": f"{MATRIX}, {len(backends)} backends, from one full-mode run of notebook `{QUEUE_NOTEBOOK}` on "
                     f"{day} at commit `{commit}` (every figure in the table is from that run; "
                     f"{fig['tx_trials']} transaction trials each).",
        "queue_table_note": f" Its section “{PUBLISHED}” sets the published benchmarks (python_queue_benchmark, "
                            f"queue-latency-benchmark, django-vtasks) beside these figures, as context, not targets.",
        "queue_short": f"{kills[0].upper()}{kills[1:]}; {pickup}; {rollback}.",
        "queue_answer": f"{kills[0].upper()}{kills[1:]}; {pickup} (p50, default settings), and each polling "
                        f"backend's tuning knob cut its pickup at least 2x; {rollback}, whose task row is part of the "
                        f"site's transaction: every other backend ran it.",
    }


FINDINGS = [
    Finding("“Deferring cuts response time”", "Holds.",
            "Holds: the request no longer waits for the work, and every email still arrives.",
            {"01-blocking-vs-deferred": ["blocking_waits", "deferred_10x", "deferred_near_noop", "delivered"],
             "03-the-work-still-happens": ["response_3x"]},
            RESPONSE_TIME, "01-blocking-vs-deferred-fig01", "response-time.png",
            "Response time per request of the no-op, deferred and blocking endpoints on a log axis: the cumulative "
            "distribution on the left, p50 and p95 bars on the right; the blocking requests sit at the SMTP "
            "provider's delay, the deferred ones beside the no-op."),
    Finding("“It frees the server thread”", "Holds.",
            "Holds: the blocking view is capped at c/S and its latency explodes near it; the deferred view keeps "
            "answering in milliseconds past that ceiling.",
            {"02-under-load": ["saturates_at_capacity", "p99_past_capacity", "deferred_p99", "deferred_p50"],
             "08-does-async-fix-it": ["sync_at_capacity"]},
            SERVER_THREAD, "02-under-load-fig01", "under-load.png",
            "Latency from the moment each request was due against the arrival rate, p50 and p99, blocking and "
            "deferred, with the M/D/c queueing model's curves and a vertical line at the capacity c/S: blocking "
            "climbs steeply toward c/S, deferred stays flat near the bottom.", phrases=_deferred_verb),
    Finding("“It improves INP”",
            "Not as stated: deferring cuts TTFB, not INP, unless the page blocks its main thread.",
            "Not as stated: INP runs from the input to the next paint, which does not wait for the server when the "
            "page sends with fetch() or a form post. Deferring cuts TTFB and the time until the answer shows; it "
            "moves INP only for a page that blocks its main thread.",
            {"04-what-the-user-sees": ["fetch_inp_same", "form_inp_out", "form_ttfb_cut", "fetch_feedback_sooner",
                                       "xhr_inp_waits"]},
            INP, "04-what-the-user-sees-fig02", "inp.png",
            "INP of the sign-up page per way of sending the form (form post, fetch, synchronous request) and path "
            "(blocking, deferred), one dot per trial with the median marked, against the Core Web Vitals bands: "
            "only the synchronous request's blocking path leaves the good band.", phrases=_inp_threshold),
    Finding("“Celery or similar” is the fix",
            "Not by itself: plain enqueues lost emails; the queue's retries and production settings lost fewer; a "
            "ledger around the queue lost and duplicated none, on every backend measured.",
            "Not by itself: a queue moves the work out of the request, it does not make it reliable. Without "
            "retries a refused send is gone, and a killed worker loses what it held; the queue's own retries survive "
            "a provider's transient faults; its documented production settings add what the queue offers for dead "
            "workers (which on some queues is nothing, and where a task is given back, it can be sent twice). The "
            "ledger (a row in the request, enqueued on commit, retried, reconciled, checked with the provider) "
            "lost nothing and sent nothing twice, and ended every permanently refused email as failed.",
            {"05-faults": ["plain_smtp_lost", "retries_recover", "ledger_lost", "ledger_duplicated",
                           "ledger_permanent", "ledger_confirmed", "ledger_agrees"]},
            QUEUE_IS_THE_FIX, "05-faults-fig01", "faults.png",
            "Emails lost or duplicated, as a percentage of those requested, for each fault injected under load "
            "(consumer kill, SMTP 4xx, dropped SMTP connections, a stalling provider, 550 for unknown users, web "
            "server restart), for each of four designs (plain, the queue's retries, its production settings, the "
            "job ledger), every backend summed.", phrases=_designs, table=_designs_table),
    Finding("The work still has to happen",
            "About as long end to end as blocking; a backlog grows when arrivals outpace the consumer.",
            "The email takes about as long end to end as the blocking request did, and when arrivals outpace the "
            "consumer the queue grows and every task waits longer: bound it and say so (503).",
            {"03-the-work-still-happens": ["end_to_end_near_blocking", "backlog_grew", "last_waited_longer"],
             "05-faults": ["bounded_depth", "unbounded_drain"]},
            WORK_STILL_HAPPENS, quote=False),
    Finding("Pickup delay", "A polled queue starts late after idle; tuned polling or a blocking pop starts sooner.",
            "A polled queue starts a task late after an idle spell; tuning the polling buys it back for some idle "
            "CPU, a blocking pop (Redis) avoids it. The user sees the deferred email sent later than the blocking one.",
            {"03-the-work-still-happens": ["tuned_pickup_sooner", "tuned_idle_cpu"],
             "06-scale-out": ["pickup"],
             "04-what-the-user-sees": ["delivered_later"]},
            PICKUP, quote=False),
    Finding("What a crash loses", "A killed consumer loses what its workers held; the ledger loses nothing.",
            "A killed consumer loses the tasks its workers held; a crashed web server fails the requests in flight "
            "but loses nothing it accepted. A ledger with a reconciler loses nothing.",
            {"05-faults": ["plain_kills_lost", "web_restart", "ledger_delivered"]},
            CRASH, quote=False),
    Finding("Which queue", "{queue_short}", "{queue_answer}",
            {QUEUE_NOTEBOOK: ["view_delivered", "load_delivered", "kills_settled", "kills_kept_delivery", "kills_lost",
                              "blocking_pickup", "tuning_knob", "rollback", "in_transaction", "on_commit"],
             "06-scale-out": ["enqueue_cost", "drain_one", "drain_four"]},
            WHICH_QUEUE, f"{QUEUE_NOTEBOOK}-fig06", "which-queue-kills.png",
            "Emails lost, duplicated and left stuck (marked running or unacknowledged) per queue backend after its "
            "workers were SIGKILLed mid-send: one group of bars per backend, the counts of the table's killed-workers "
            "column.", quote=False, phrases=_queue_matrix, table=_queue_table),
    Finding("When async is enough", "Async frees the server thread, not the user's wait.",
            "An async view frees the server thread, not the user's wait: enough when capacity is the problem and "
            "the user must learn the outcome in the response; deferring is what cuts the wait.",
            {"08-does-async-fix-it": ["async_5x", "async_waits", "smtp_failure"]},
            ASYNC, quote=False),
]


@dataclass
class Row:
    """A finding as measured by one run: what the tables and sections print."""

    finding: Finding
    measured: str | None  # None: the run holds no figure for it
    checks: list[tuple[str, str, bool | None]]  # (notebook, claim, held; None: not checked in this run)
    table: tuple[list[str], list[list[str]]] | None = None
    answers: tuple[str, str] | None = None  # (short, answer) as the run's phrases fill them

    @property
    def passed(self) -> int:
        return sum(1 for *_, held in self.checks if held)

    def _verdict(self, answer: str) -> str:
        """A failed check first (a partial rerun still shows it), then whether the run measured it all."""
        failed = sum(1 for *_, held in self.checks if held is False)
        if failed:
            return f"Not confirmed: {failed} of {len(self.checks)} checks failed."
        if self.measured is None or any(held is None for *_, held in self.checks):
            return "Not measured in this run."
        return answer

    @property
    def verdict(self) -> str:
        return self._verdict(self.answers[1] if self.answers else self.finding.answer)

    @property
    def short(self) -> str:
        return self._verdict(self.answers[0] if self.answers else self.finding.short)


def rows(measured: Measured) -> list[Row]:
    result = []
    for finding in FINDINGS:
        figures = Figures(measured)
        try:  # a run of notebook 07 alone still shows its matrix
            table = finding.table(figures) if finding.table else None
        except KeyError:
            table = None
        try:
            text = f"{fill(finding.measured, figures, finding.phrases)} {figures.runs_note()}"
            phrases = finding.phrases(figures) if finding.phrases else {}
            answers = (finding.short.format(**phrases), finding.answer.format(**phrases)) if phrases else None
        except KeyError:
            text = answers = None
        claims = [(nb, verdicts.claim(nb, key)) for nb, key in finding.claim_keys()]
        checks = [(nb, claim, measured.verdicts.get(nb, {}).get(claim)) for nb, claim in claims]
        result.append(Row(finding, text, checks, table, answers))
    return result


# -- the README's block ----------------------------------------------------------------------------------------------


def _notebook_links(finding: Finding, measured: Measured, prefix: str = "../notebooks/") -> str:
    return ", ".join(f"[`{nb}`]({prefix}{nb}.ipynb)" for nb in finding.checks if nb in measured.notebooks)


def _source(measured: Measured) -> str:
    """Which run the figures are from: its notebooks, date, machine, commit and length, and any notebook run apart."""
    env = measured.summary["environment"]
    all_passed, all_checks = measured.tally()
    minutes = measured.minutes()
    apart = {nb: entry["run"] for nb, entry in measured.notebooks.items() if entry.get("run")}
    together = [nb.split("-")[0] for nb in measured.notebooks if nb not in apart]
    own = "".join(f", and {nb.split('-')[0]} in a full-mode run of its own on "
                  f"{datetime.fromtimestamp(run['started_at'], UTC).strftime('%Y-%m-%d')} at commit "
                  f"`{run['commit'][:7]}`" for nb, run in apart.items())
    return (f"From {measured.label}: notebooks {', '.join(together)} in full mode on {measured.started()}, "
            f"{env['cpu_count']} cores, Python {env['python']}, commit `{env['git_commit'][:7]}`"
            + (f", {minutes:.0f} minutes" if minutes else "") + own
            + f"; {all_passed} of {all_checks} verdict checks PASS. Each figure is from that one run unless a range "
            "says how many runs it spans (a committed benchmark run of the same figures): the spread across runs of "
            "a single number is not in data/reference/. Numbers from another machine are not targets: `make run` "
            "measures yours.")


def _check_line(notebook: str, claim: str, held: bool | None) -> str:
    state = {True: "PASS", False: "FAIL", None: "not run"}[held]
    return f"{claim}: {state} ({notebook.split('-')[0]})"


def _markdown_row(cells: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def findings_markdown(measured: Measured) -> str:
    """docs/findings.md: every finding with its figures, table, chart and the notebooks' verdict lines."""
    lines = [
        "<!-- generated by `python -m helpers report` from data/reference/: edit helpers/runs/report.py, "
        "not this file -->",
        "",
        "# What the lab found, finding by finding",
        "",
        "The article's claims one by one, then what it leaves out: each with the lab's answer, the figures behind "
        "it, the notebooks' own verdict lines and the notebook that shows it. The [README](../README.md) has the "
        "summary; the [HTML report](report/index.html) every chart of every notebook.",
        "",
        _source(measured),
    ]
    for n, row in enumerate(rows(measured), 1):
        heading = "The article says" if row.finding.quote else "The article leaves out"
        lines += ["", f"## {n}. {heading}: {row.finding.title}", "", f"**{row.verdict}**", "",
                  row.measured or "Not measured in this run.", ""]
        if row.table:
            columns, cells = row.table
            lines += [_markdown_row(columns), _markdown_row(["---"] * len(columns)),
                      *[_markdown_row(cell) for cell in cells], ""]
        if row.finding.chart_file:
            lines += [f"![{row.finding.alt}](findings/{row.finding.chart_file})", ""]
        lines.append(f"Verdict lines ({_notebook_links(row.finding, measured)}):")
        lines.append("")
        lines += [f"- {_check_line(*check)}" for check in row.checks]
    return "\n".join(lines) + "\n"


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes < 20 and rest else f"{round(seconds / 60)} min"


def timings(folder: Path = REFERENCE_DIR) -> dict:
    """Commands timed on the reference's kind of machine (data/reference/timings.json): name -> its record."""
    path = folder / TIMINGS
    return json.loads(path.read_text()) if path.exists() else {}


def _commands(measured: Measured, timed: dict) -> list[str]:
    """The two commands, each with how long it took where that was measured."""
    env = measured.summary["environment"]
    records = [(timed.get(TIMED_TEST), "on a quiet machine"), (timed.get(TIMED_TEST_BUSY), "with one core kept busy")]
    took = [f"{_duration(record['seconds'])} {how} ({record['cores']} cores, commit `{record['commit'][:7]}`)"
            for record, how in records if record]
    took_test = (f"took {' and '.join(took)}, on a fresh clone with its set-up" if took
                 else "is not timed in data/reference/")
    seconds, numbers = measured.notebook_seconds(), [nb.split("-")[0] for nb in measured.notebooks]
    took_run = (f"took {_duration(seconds)} for notebooks {numbers[0]}-{numbers[-1]} in full mode ({env['cpu_count']} "
                f"cores; the reference's notebooks, their seconds summed)" if seconds else
                "is not timed in data/reference/")
    return ["```bash",
            "make lab    # set-up (.venv, kernel, Debian packages), then JupyterLab on notebooks/ (127.0.0.1:8888)",
            "make test   # the same set-up, then every test and every notebook in quick mode",
            "```",
            "",
            f"`make test` {took_test}. `make run` runs every notebook in full mode (your machine's own findings, "
            f"in data/runs/): it {took_run}. `make report` rewrites this page's figures "
            "([rerunning](docs/rerunning.md)).",
            ]


def readme_block(measured: Measured, timed: dict | None = None) -> str:
    """The README's first screen (markers excluded): the article's table answered, which setup when, the two
    commands and how long they took, the findings table."""
    figures = Figures(measured)

    def link(nb: str) -> str:
        return f"[{nb.split('-')[0]}](notebooks/{nb}.ipynb)"

    lines = ["<!-- generated by `python -m helpers report` from data/reference/: edit helpers/runs/report.py, "
             "not this block -->", ""]
    try:
        table = guide.article_table(figures, link)
    except KeyError:
        table = []
    if table:
        lines += ["The article's table, each cell measured (notebook linked):", "",
                  _markdown_row(guide.ARTICLE_COLUMNS), _markdown_row(["---"] * len(guide.ARTICLE_COLUMNS)),
                  *[_markdown_row(cells) for cells in table], ""]
    try:
        decisions = guide.which_setup_when(figures, link)
    except KeyError:
        decisions = []
    if decisions:
        lines += ["## Which setup when", "", *[f"- {line}" for line in decisions], ""]
    lines += [figures.runs_note().replace("One run", "Each figure above is from one run", 1)
              + " [Where the figures come from](docs/findings.md).", "", "## Two commands", "",
              *_commands(measured, timings() if timed is None else timed), "",
              "## What the lab found", "",
              "| | The article says, or leaves out | What the lab found | Checks | Notebook |",
              "|---|---|---|---|---|"]
    for n, row in enumerate(rows(measured), 1):
        lines.append(f"| {n} | {row.finding.title} | {row.short} | {row.passed} of {len(row.checks)} PASS | "
                     f"{_notebook_links(row.finding, measured, 'notebooks/')} |")
    passed, checked = measured.tally()
    lines += ["", f"{passed} of {checked} verdict checks PASS. Every finding with its figures, tables, charts and "
              "verdict lines: [docs/findings.md](docs/findings.md); every notebook's charts: "
              "[docs/report/index.html](docs/report/index.html)."]
    return "\n".join(lines) + "\n"


def chart_files(measured: Measured) -> dict[Path, Path]:
    """docs/findings/NAME.png -> the reference chart it copies."""
    return {CHARTS_DIR / f.chart_file: measured.charts[f.chart] for f in FINDINGS if f.chart}


def readme_with(readme: str, block: str) -> str:
    before, rest = readme.split(FINDINGS_START, 1)
    _, after = rest.split(FINDINGS_END, 1)
    return f"{before}{FINDINGS_START}\n{block}{FINDINGS_END}{after}"


def stale(readme: Path | None = None, measured: Measured | None = None, details: Path | None = None) -> list[str]:
    """What `python -m helpers report` would change: the README's block, docs/findings.md, a chart missing or
    different, the committed HTML report."""
    readme, details, measured = readme or README, details or DETAILS, measured or reference()
    text = readme.read_text()
    found = [] if readme_with(text, readme_block(measured)) == text else [readme]
    if not details.exists() or details.read_text() != findings_markdown(measured):
        found.append(details)
    found += [target for target, source in chart_files(measured).items()
              if not target.exists() or target.read_bytes() != source.read_bytes()]
    index = REPORT_DIR / "index.html"
    if not index.exists() or index.read_text() != render_html(measured, REPORT_DIR):
        found.append(index)
    return [shown_path(path) for path in found]


def shown_path(path: Path) -> str:
    """A path as the check prints it: relative to the repository when inside it."""
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def write_readme(readme: Path | None = None, measured: Measured | None = None, details: Path | None = None) -> None:
    readme, details, measured = readme or README, details or DETAILS, measured or reference()
    readme.write_text(readme_with(readme.read_text(), readme_block(measured)))
    details.write_text(findings_markdown(measured))
    CHARTS_DIR.mkdir(parents=True, exist_ok=True)
    for target, source in chart_files(measured).items():
        shutil.copyfile(source, target)


# -- the HTML report of the latest run -------------------------------------------------------------------------------

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Background-tasks lab: {{ measured.label }}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; width: 100%; }
td, th { border: 1px solid #ccc; padding: .4rem; vertical-align: top; }
th { background: #f3f3f3; text-align: left; } .FAIL { color: #b00; font-weight: bold; } .PASS { color: #070; }
img { max-width: 100%; } figure { margin: 1rem 0; } .charts img { max-width: 32rem; }
</style>
</head>
<body>
<h1>Background-tasks lab: {{ measured.label }}</h1>
<p>Started {{ measured.started() }} on {{ env.cpu_count }} cores, Python {{ env.python }}, commit
<code>{{ env.git_commit }}</code>. {{ passed }} of {{ total }} verdict checks PASS.</p>
<h2>Findings</h2>
<table id="findings">
<tr><th>The article says, or leaves out</th><th>What the lab found</th><th>Measured</th><th>Checks</th></tr>
{% for row in rows %}
<tr><td>{{ row.title }}</td><td>{{ row.verdict }}</td><td>{{ row.measured or "Not measured in this run." }}
{% if row.table %}<table class="matrix"><tr>{% for column in row.table[0] %}<th>{{ column }}</th>{% endfor %}</tr>
{% for cells in row.table[1] %}<tr>{% for cell in cells %}<td>{{ cell }}</td>{% endfor %}</tr>{% endfor %}
</table>{% endif %}
{% if row.chart %}<figure><img src="{{ row.chart }}" alt="{{ row.alt }}"></figure>{% endif %}</td>
<td><ul>{% for line, state in row.checks %}<li class="{{ state }}">{{ line }}</li>{% endfor %}</ul></td></tr>
{% endfor %}
</table>
<h2>Notebooks</h2>
{% for nb in notebooks %}
<h3 id="{{ nb.name }}">{{ nb.name }}: {{ nb.status }}
</h3>
<p>{% if nb.html %}<a href="{{ nb.html }}">Executed notebook (HTML)</a>{% else %}Executed notebook not in this
reference: open <a href="{{ nb.source }}">the notebook</a> and run it, or see its verdict and charts below.
{% endif %}</p>
<ul>{% for claim, held in nb.verdict.items() %}{% set state = 'none' if held is none else 'PASS' if held else 'FAIL' %}
<li class="{{ state }}">{{ claim }}: {{ not_checked if held is none else state }}</li>{% endfor %}</ul>
<div class="charts">{% for chart, alt in nb.charts %}
<figure><a href="{{ chart }}"><img src="{{ chart }}" alt="{{ alt }}"></a><figcaption>{{ alt }}</figcaption></figure>
{% endfor %}</div>
{% endfor %}
</body>
</html>
"""


def latest() -> tuple[Measured, Path]:
    """The newest rerun and its folder; else the reference, reported into data/runs/reference-report/."""
    summary = compare.latest_rerun_summary()
    if summary is not None:
        return rerun(summary.parent), summary.parent
    return reference(), runs_root() / "reference-report"


def chart_alts(notebook: str) -> list[str]:
    """The alt text of each chart a notebook shows, in order: the `alt=` of its charts.common.show() calls, read from
    the notebook's source (the text a reader of its HTML export gets)."""
    import ast

    path = REPO_ROOT / "notebooks" / f"{notebook}.ipynb"
    if not path.exists():
        return []
    alts = []
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        try:
            tree = ast.parse("".join(cell["source"]))
        except SyntaxError:
            continue
        found = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "show":
                alt = next((k.value for k in node.keywords if k.arg == "alt"), None)
                try:
                    found.append((node.lineno, ast.literal_eval(alt) if alt is not None else ""))
                except ValueError:
                    found.append((node.lineno, ""))
        alts += [alt for _, alt in sorted(found)]
    return alts


def render_html(measured: Measured, folder: Path, copy: bool = False) -> str:
    """index.html for `folder`: the findings table and every notebook's verdict, executed notebook (or a plain
    "not in this reference") and charts with their alt text. Charts and exports outside the folder are linked by
    relative path, or with `copy` copied into folder/figures/ first, so the page stands alone."""
    import jinja2

    def link(path: Path) -> str:
        if copy and not path.resolve().is_relative_to(folder.resolve()):
            (folder / "figures").mkdir(parents=True, exist_ok=True)
            path = Path(shutil.copyfile(path, folder / "figures" / path.name))
        return Path(os.path.relpath(path.resolve(), folder.resolve())).as_posix()

    table = [{"title": row.finding.title, "verdict": row.verdict.replace("*", ""),  # Markdown's italics
              "measured": row.measured, "table": row.table,
              "chart": link(measured.charts[row.finding.chart]) if row.finding.chart in measured.charts else None,
              "alt": row.finding.alt,
              "checks": [(_check_line(*check), {True: "PASS", False: "FAIL", None: "none"}[check[2]])
                         for check in row.checks]}
             for row in rows(measured)]
    notebooks = []
    for name, entry in measured.notebooks.items():
        alts = chart_alts(name)
        charts = [path for stem, path in measured.charts.items() if stem.startswith(f"{name}-")]
        notebooks.append({
            "name": name, "status": entry.get("status", "ok"), "verdict": measured.verdicts.get(name, {}),
            "source": Path(os.path.relpath(REPO_ROOT / "notebooks" / f"{name}.ipynb", folder.resolve())).as_posix(),
            "html": link(measured.html[name]) if name in measured.html else None,
            "charts": [(link(path), alts[k] if k < len(alts) and alts[k] else
                        f"Chart {k + 1} of notebook {name} (its notebook gives no text alternative)")
                       for k, path in enumerate(charts)]})
    return jinja2.Environment(autoescape=True).from_string(PAGE).render(
        measured=measured, env=measured.summary["environment"], rows=table, notebooks=notebooks,
        passed=measured.tally()[0], total=measured.tally()[1], not_checked=verdicts.NOT_CHECKED)


def write_html(measured: Measured, folder: Path, copy: bool = True) -> Path:
    """index.html in `folder` (render_html)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "index.html"
    path.write_text(render_html(measured, folder, copy))
    return path


def promote(run_dir: Path, folder: Path = REFERENCE_DIR, only: list[str] | None = None) -> list[Path]:
    """Make a full-mode rerun (`make run`) the reference: copy its summary.json, each notebook's run.json and
    per-point table, its charts and its executed-notebook HTML exports into `folder` (full-run/...); returns the
    files written. `only`: those of its notebooks. A notebook the run did not cover keeps its entry and files, marked
    with its own run (start, commit). Refuses a run that failed a claim or ran a notebook in quick mode: the
    reference is what the README quotes."""
    from helpers.runs import rerun

    run_dir = Path(run_dir)
    summary = compare.load_summary(run_dir / "summary.json")
    notebooks = {name: entry for name, entry in summary.get("notebooks", {}).items() if only is None or name in only}
    quick = sorted(name for name, entry in notebooks.items() if entry.get("parameters", {}).get("quick", True))
    if not notebooks or quick or not rerun.succeeded({**summary, "notebooks": notebooks}):
        raise ValueError(f"{run_dir} is not a full-mode run whose every claim held (quick mode: {quick or 'none'})")
    kept = compare.load_summary(folder / "summary.json") if (folder / "summary.json").is_file() else {"notebooks": {}}
    others = {name: {"run": {"started_at": kept["started_at"], "commit": kept["environment"]["git_commit"]}, **entry}
              for name, entry in kept["notebooks"].items() if name not in notebooks}
    merged = {**summary, "notebooks": dict(sorted({**others, **notebooks}.items()))}
    merged["claims_failed"] = rerun.failed_claims(merged)
    merged["succeeded"] = rerun.succeeded(merged)
    written = [folder / "summary.json"]
    (folder / "summary.json").write_text(json.dumps(merged, indent=2, default=str) + "\n")
    full = folder / "full-run"
    (full / "figures").mkdir(parents=True, exist_ok=True)
    (full / "html").mkdir(parents=True, exist_ok=True)
    for name, entry in notebooks.items():
        experiment = run_dir / entry["experiment_dir"]
        for stale in [*full.glob(f"figures/{name}-fig*.png"), *full.glob(f"{name}.*")]:
            stale.unlink()
        written.append(Path(shutil.copyfile(experiment / "run.json", full / f"{name}.run.json")))
        if (experiment / "points.parquet").is_file():
            written.append(Path(shutil.copyfile(experiment / "points.parquet", full / f"{name}.points.parquet")))
        for figure in entry.get("figures_saved", []):
            written.append(Path(shutil.copyfile(run_dir / "figures" / figure, full / "figures" / figure)))
        if entry.get("html") and (run_dir / entry["html"]).is_file():
            written.append(Path(shutil.copyfile(run_dir / entry["html"], full / "html" / f"{name}.html")))
    return written


def main(check: bool = False) -> int:
    """`python -m helpers report [--check]`; returns the exit status."""
    if check:
        found = stale()
        for name in found:
            print(f"stale: {name} (run `python -m helpers report`)")
        return 1 if found else 0
    write_readme()
    print(f"README.md's first screen, docs/findings.md and {len(chart_files(reference()))} charts in docs/findings/, "
          "from data/reference/")
    print(f"report of the reference: {write_html(reference(), REPORT_DIR, copy=False)}")
    measured, folder = latest()
    print(f"report of {measured.label}: {write_html(measured, folder)}")
    return 0
