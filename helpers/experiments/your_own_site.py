"""Notebook 10, your own site: the lab's instruments pointed at a Django site you run, to find the endpoints whose
requests wait on work that could be deferred, and what deferring it would buy.

Per endpoint: its service time S (sequential requests) and the Server-Timing spans that say where it went; the
open-loop rate ladder of notebook 08 (helpers.protocols.open_loop), p50/p99 at its lowest rung and the rate at which
latency runs away, beside c/S, what the queueing model predicts for the stated worker count c; whether it "blocks";
and for an endpoint with a slow span, the model's prediction with that span moved out of the request, beside the
endpoint that defers the same work when there is one. For a page: TTFB, FCP and INP of one interaction in Chromium,
against the Core Web Vitals thresholds. Safe by default: loopback only unless allowed, the site checked endpoint by
endpoint first (helpers.instruments.site_check), every count, rate and duration bounded.
`python -m helpers bench your_own_site` runs it against labsite."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from helpers import runs
from helpers.analysis import queueing
from helpers.experiments.what_the_user_sees import vitals_rating
from helpers.instruments import browser, site_check
from helpers.instruments.client import RequestSpec, server_timing_spans, time_requests
from helpers.instruments.site_client import SiteClient
from helpers.protocols import open_loop
from helpers.runs.bench import benchmark
from helpers.stack import Lab

EXPECTATIONS = ("blocks", "does not block")
WHOLE_SPANS = ("app", "total")  # Server-Timing spans that time the whole request, not a part of it
# labsite's span around each enqueue (labsite.middleware): what a deferred request keeps, not slow work to move out
QUEUE_SPANS = ("enqueue",)
RECIPE = "docs.recipe.server_timing.middleware.ServerTimingSpans"  # the middleware to copy (labsite: LAB_EXTRA_...)
# Bounds a setup may not pass: a notebook pointed at a real site must stop by itself, soon.
MAX_REQUESTS_PER_POINT = 5_000
MAX_POINT_S = 30.0
MAX_SEQUENTIAL = 200
MIN_POINT_REQUESTS = 10  # a point at a low rate lasts long enough for this many requests to be due in its window


class SetupRefused(site_check.SiteProblem):
    """A parameter past the bounds that keep a run short and the site safe."""


@dataclass(frozen=True)
class Endpoint:
    """One endpoint as the load sends it: form values and body may hold "{i}", the request's number."""

    name: str
    path: str
    method: str = "GET"
    form: dict[str, str] = field(default_factory=dict)
    body: str | None = None  # sent instead of the form, as content_type
    content_type: str = "application/json"
    expect: str | None = None  # what you expect of it, which the verdict checks: "blocks" or "does not block"
    deferred_as: str | None = None  # the endpoint that does the same work deferred (the model is held against it)

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"

    def request_spec(self, count: int, warmup: int) -> RequestSpec:
        return RequestSpec(self.name, self.path, count, self.method, dict(self.form), warmup=warmup, body=self.body,
                           content_type=self.content_type)


@dataclass
class Setup:
    """Every knob (the notebook's parameters, the benchmark's defaults)."""

    base_url: str
    endpoints: list[Endpoint]
    baseline: str  # the name of the site's cheapest endpoint (a no-op): "far above" is measured against it
    web_workers: int = 4  # c: the requests your server serves at once (gunicorn workers x threads)
    allow_remote_host: bool = False  # True: the site may be on another machine (one you run)
    requests: int = 20  # sequential requests per endpoint, for S and its spans
    rate_steps: tuple[float, ...] = (0.25, 0.5, 1, 2)  # the ladder, in multiples of each endpoint's own c/S
    refine_steps: int = 2  # points after the first runaway, between the highest rate that held and it
    max_rate: float = 100.0  # no rung above this (requests/s)
    duration_s: float = 3.0  # measured part of each point
    warmup_s: float = 1.0
    timeout_s: float = 10.0  # a request unanswered this long fails
    blocks_ratio: float = 10.0  # "far above the no-op": S at least this many times the baseline's S...
    blocks_min_ms: float = 20.0  # ... and this much above it; or a span of a part of the request this long
    page_path: str | None = None  # a page to open in Chromium (None: none)
    page_click: str | None = None  # the CSS selector of the element to press on it, for INP
    page_trials: int = 3
    ladder_baseline: bool = False  # the baseline's own ladder too (it is a reference: by default only its S)

    def __post_init__(self):
        self.endpoints = [e if isinstance(e, Endpoint) else Endpoint(**e) for e in self.endpoints]
        names = [e.name for e in self.endpoints]
        problems = [f"baseline {self.baseline!r} is not an endpoint's name"] if self.baseline not in names else []
        problems += [f"{e.name}: expect must be one of {EXPECTATIONS}, not {e.expect!r}"
                     for e in self.endpoints if e.expect not in (None, *EXPECTATIONS)]
        problems += [f"{e.name}: deferred_as {e.deferred_as!r} is not an endpoint's name"
                     for e in self.endpoints if e.deferred_as is not None and e.deferred_as not in names]
        if len(set(names)) != len(names):
            problems.append("two endpoints have the same name")
        if self.max_rate * (self.duration_s + self.warmup_s) > MAX_REQUESTS_PER_POINT:
            problems.append(f"max_rate x (duration_s + warmup_s) is over {MAX_REQUESTS_PER_POINT} requests a point")
        if self.duration_s + self.warmup_s > MAX_POINT_S or not 1 <= self.requests <= MAX_SEQUENTIAL:
            problems.append(f"a point lasts at most {MAX_POINT_S:g} s, and 1 to {MAX_SEQUENTIAL} sequential requests")
        if problems:
            raise SetupRefused("; ".join(problems))

    def by_name(self, name: str) -> Endpoint:
        return next(e for e in self.endpoints if e.name == name)


def check(setup: Setup) -> SiteClient:
    """The site's address, allowed, and every endpoint answering 2xx itself; else the SiteProblem that says why."""
    client = site_check.site_client(setup.base_url, setup.allow_remote_host)
    for e in setup.endpoints:
        site_check.check_endpoint(client, e.method, e.path, e.form, e.body, e.content_type, setup.timeout_s)
    return client


def service_times(client: SiteClient, setup: Setup) -> pd.DataFrame:
    """`setup.requests` sequential requests per endpoint, interleaved, each with its Server-Timing spans."""
    frame = time_requests(client.host, client.port, [e.request_spec(setup.requests, warmup=1) for e in setup.endpoints])
    return frame.assign(spans=frame["server_timing"].map(server_timing_spans))


def slowest_span(timings: pd.DataFrame) -> tuple[str | None, float]:
    """The span (not one of WHOLE_SPANS or QUEUE_SPANS) with the highest median over the requests, and that median
    (ms)."""
    left_out = WHOLE_SPANS + QUEUE_SPANS
    spans = pd.DataFrame([{k: v for k, v in s.items() if k not in left_out} for s in timings["spans"]])
    if spans.empty or not len(spans.columns):
        return None, 0.0
    medians = spans.fillna(0.0).median()
    return str(medians.idxmax()), float(medians.max())


def sweep(lab: Lab | None, client: SiteClient, setup: Setup, endpoint: Endpoint, service_s: float,
          progress=None) -> tuple[list[dict], list[pd.DataFrame]]:
    """The endpoint's rate ladder: setup.rate_steps x its c/S, capped at max_rate, up to the first runaway, then
    refined (open_loop.ladder). With the lab that runs the site, its queue is drained before each point."""
    capacity = queueing.saturation_rate(service_s, setup.web_workers)
    rates = sorted({round(min(setup.max_rate, step * capacity), 1) for step in setup.rate_steps})
    target = open_loop.Target(endpoint.method, endpoint.body, endpoint.content_type, (client.host, client.port),
                              timeout_s=setup.timeout_s)

    def point_at(rate: float, baseline_ms: float | None) -> tuple[dict, pd.DataFrame]:
        duration_s = min(MAX_POINT_S - setup.warmup_s, max(setup.duration_s, MIN_POINT_REQUESTS / rate))
        return open_loop.point(lab, endpoint.path, dict(endpoint.form), rate, duration_s, setup.warmup_s,
                               baseline_ms=baseline_ms, target=target, endpoint=endpoint.name)

    return open_loop.ladder(point_at, rates, setup.refine_steps, progress=progress)


@dataclass
class Measured:
    setup: Setup
    timings: pd.DataFrame  # the sequential requests, one row each, with their spans
    points: pd.DataFrame  # one row per (endpoint, rate) of the ladders
    records: pd.DataFrame  # every request of the ladders
    page: pd.DataFrame | None  # one row per browser trial

    def endpoint_points(self, name: str) -> pd.DataFrame:
        return self.points[self.points["endpoint"] == name].sort_values("rate")


def measure(setup: Setup, lab: Lab | None = None, progress=None) -> Measured:
    """Check the site, time every endpoint, climb each ladder (the baseline's too), then the page in Chromium."""
    client = check(setup)
    timings = service_times(client, setup)
    rows, records = [], []
    for endpoint in setup.endpoints:
        if endpoint.name == setup.baseline and not setup.ladder_baseline:
            continue
        own = timings[timings["label"] == endpoint.name]
        service_s = float(own["total_ms"].median()) / 1e3
        endpoint_rows, endpoint_records = sweep(lab, client, setup, endpoint, service_s, progress)
        rows += endpoint_rows
        records += endpoint_records
    page = None
    if setup.page_path:
        page = browser.measure_page(client.base_url, setup.page_path, setup.page_click, setup.page_trials,
                                    warmup=0, timeout_s=setup.timeout_s)
    return Measured(setup, timings, pd.DataFrame(rows), pd.concat(records, ignore_index=True), page)


def _round(value, digits: int = 2):
    return None if value is None or (isinstance(value, float) and not math.isfinite(value)) else round(value, digits)


def endpoint_figures(measured: Measured, endpoint: Endpoint) -> dict:
    """One endpoint's figures, keys prefixed with its name."""
    setup, n = measured.setup, endpoint.name
    own = measured.timings[measured.timings["label"] == n]
    ok = own[own["status"].between(200, 299)]
    s_ms = float(own["total_ms"].median())
    span, span_ms = slowest_span(ok if len(ok) else own)
    points = measured.endpoint_points(n)
    held, away = points[~points["ran_away"]], points[points["ran_away"]]
    lowest = points.iloc[0] if len(points) else pd.Series(dtype=object)
    figures = {
        "s_ms": s_ms, "sequential_p99_ms": float(np.percentile(own["total_ms"].dropna(), 99)),
        "sequential_2xx": f"{len(ok)} of {len(own)}", "span": span, "span_ms": span_ms,
        "capacity_rps": queueing.saturation_rate(s_ms / 1e3, setup.web_workers),
        "low_rate": lowest.get("rate"), "p50_ms_low": lowest.get("latency_p50_ms"),
        "p99_ms_low": lowest.get("latency_p99_ms"),
        "saturation_rps": float(points["goodput_rps"].max()) if len(points) else None, "ran_away": bool(len(away)),
        "runaway_rate": float(away["rate"].min()) if len(away) else None,
        "highest_held_rate": float(held["rate"].max()) if len(held) else None,
        "highest_rate": float(points["rate"].max()) if len(points) else None,
    }
    if span is not None and span_ms > 0 and s_ms > span_ms and len(points):
        # what deferring would buy: the same request with the slow span moved out
        rest_s = (s_ms - span_ms) / 1e3
        at = figures["runaway_rate"] or figures["highest_rate"]
        model = queueing.mdc(at, rest_s, setup.web_workers, customers=5_000)
        figures.update({"without_span_s_ms": rest_s * 1e3,
                        "without_span_capacity_rps": queueing.saturation_rate(rest_s, setup.web_workers),
                        "without_span_at_rate": at, "without_span_p50_ms_predicted": model.p50_response_ms,
                        "without_span_p99_ms_predicted": model.p99_response_ms})
    return {f"{n}_{k}": _round(float(v)) if isinstance(v, float | np.floating) else v for k, v in figures.items()}


def blocks(figures: dict, name: str) -> bool:
    """The endpoint blocks: its S far above the baseline's (blocks_ratio times, and blocks_min_ms more), or a span of
    a part of the request (mail, http, db...) of blocks_min_ms or more says where the time went."""
    f, baseline_ms = figures, figures[f"{figures['baseline']}_s_ms"]
    far_above = (f[f"{name}_s_ms"] >= f["blocks_ratio"] * baseline_ms
                 and f[f"{name}_s_ms"] - baseline_ms >= f["blocks_min_ms"])
    return bool(far_above or (f[f"{name}_span_ms"] or 0) >= f["blocks_min_ms"])


def key_figures(measured: Measured) -> dict:
    """The figures notebook 10 records and `bench your_own_site` prints: the setup the verdict reads (baseline,
    thresholds, each endpoint's expectation and counterpart), then per endpoint (prefixed with its name) S and its
    slowest span, c/S, p50/p99 at the ladder's lowest rung, the saturation throughput and where it ran away, whether
    it blocks, and with its slow span moved out the model's S, c/S and p50/p99 at its runaway rate; then the page's
    medians and the generator's own lag."""
    setup = measured.setup
    figures = {"base_url": setup.base_url, "web_workers": setup.web_workers, "baseline": setup.baseline,
               "blocks_ratio": setup.blocks_ratio, "blocks_min_ms": setup.blocks_min_ms,
               "endpoints": [{"name": e.name, "label": e.label, "expect": e.expect, "deferred_as": e.deferred_as}
                             for e in setup.endpoints],
               "all_2xx": bool(measured.timings["status"].between(200, 299).all())}
    for endpoint in setup.endpoints:
        figures.update(endpoint_figures(measured, endpoint))
    for endpoint in setup.endpoints:
        figures[f"{endpoint.name}_blocks"] = blocks(figures, endpoint.name)
    if measured.page is not None:
        page = measured.page
        for metric in ("ttfb", "fcp", "inp"):
            values = pd.to_numeric(page[f"{metric}_ms"], errors="coerce").dropna()
            figures[f"page_{metric}_ms"] = _round(float(values.median()), 1) if len(values) else None
            figures[f"page_{metric}_rating"] = vitals_rating(figures[f"page_{metric}_ms"], metric)
        figures["page_trials"] = len(page)
        figures["page_errors"] = int(page["error"].notna().sum())
    figures["generator_lag_p99_ms_max"] = _round(float(measured.points["lag_p99_ms"].max()))
    figures["requests"] = int(measured.points["requests"].sum() + len(measured.timings))
    return figures


def endpoint_table(figures: dict) -> pd.DataFrame:
    """One row per endpoint: what the notebook shows, from the figures."""
    rows = []
    for e in figures["endpoints"]:
        f = {k.removeprefix(f"{e['name']}_"): v for k, v in figures.items() if k.startswith(f"{e['name']}_")}
        rows.append({"endpoint": e["name"], "request": e["label"], "S ms": f["s_ms"],
                     "slowest span": f"{f['span']} {f['span_ms']:.0f} ms" if f["span"] else "",
                     "blocks": f["blocks"], "c/S per s": f["capacity_rps"], "low rate per s": f["low_rate"],
                     "p50 ms there": f["p50_ms_low"], "p99 ms there": f["p99_ms_low"],
                     "saturation per s": f["saturation_rps"] if f["ran_away"] else None,
                     "ran away at per s": f["runaway_rate"], "kept up to per s": f["highest_held_rate"]})
    return pd.DataFrame(rows).set_index("endpoint")


def deferring_table(figures: dict) -> pd.DataFrame:
    """Per endpoint with a slow span: the model with the span moved out, beside its deferred counterpart's measure."""
    rows = []
    for e in figures["endpoints"]:
        n, c = e["name"], e["deferred_as"]
        if f"{n}_without_span_s_ms" not in figures:
            continue
        at = figures[f"{n}_without_span_at_rate"]
        row = {"endpoint": n, "span moved out": figures[f"{n}_span"], "S ms": figures[f"{n}_s_ms"],
               "model: S ms": figures[f"{n}_without_span_s_ms"],
               "model: c/S per s": figures[f"{n}_without_span_capacity_rps"], "at rate per s": at,
               "model: p50 ms": figures[f"{n}_without_span_p50_ms_predicted"],
               "model: p99 ms": figures[f"{n}_without_span_p99_ms_predicted"]}
        if c is not None:
            row.update({"measured": c, "measured: S ms": figures[f"{c}_s_ms"],
                        "measured: kept up to per s": figures[f"{c}_highest_held_rate"]})
        rows.append(row)
    return pd.DataFrame(rows)


# labsite's demo endpoints (each request its own recipient) and page: what the notebook probes without `endpoints`
LABSITE_ENDPOINTS = [
    {"name": "noop", "path": "/noop/"},
    {"name": "blocking", "path": "/email/blocking/", "method": "POST", "form": {"to": "block{i}@example.test"},
     "expect": "blocks", "deferred_as": "deferred"},
    {"name": "deferred", "path": "/email/deferred/", "method": "POST", "form": {"to": "defer{i}@example.test"},
     "expect": "does not block"},
]
LABSITE_BASELINE = "noop"
LABSITE_PAGE = ("/signup/?to=page@example.test", "#blocking-fetch")  # the sign-up page, its blocking fetch() button


@benchmark("your_own_site")
def your_own_site(run_dir, smtp_delay_s: float = 0.2, web_workers: int = 4, consumer_workers: int = 8,
                  requests: int = 20, rate_steps=(0.25, 0.5, 1, 2), refine_steps: int = 2, max_rate: float = 100.0,
                  duration_s: float = 3.0, warmup_s: float = 1.0, page_trials: int = 3) -> dict:
    """Notebook 10 against labsite started by the lab, its Server-Timing recipe on."""
    with Lab(run_dir=run_dir, smtp_delay_s=smtp_delay_s, web_workers=web_workers, consumer_workers=consumer_workers,
             consumer_max_delay_s=0.1, huey_log_level="WARNING", site_env={"LAB_EXTRA_MIDDLEWARE": RECIPE}) as lab:
        setup = Setup(lab.http.base_url, LABSITE_ENDPOINTS, LABSITE_BASELINE, web_workers=web_workers,
                      requests=requests, rate_steps=tuple(rate_steps), refine_steps=refine_steps, max_rate=max_rate,
                      duration_s=duration_s, warmup_s=warmup_s, page_path=LABSITE_PAGE[0],
                      page_click=LABSITE_PAGE[1], page_trials=page_trials)
        measured = measure(setup, lab)
    runs.save_table(run_dir, "points", measured.points)
    runs.save_table(run_dir, "timings", measured.timings.drop(columns="spans"))
    runs.write_metadata(run_dir, {"setup": asdict(setup)})
    figures = key_figures(measured)
    return {**figures, "claims_failed": [k for k, held in verdict(figures).items() if held is False]}


def verdict(figures: dict, quick: bool = False) -> dict[str, bool | None]:
    """Notebook 10's claims, from key_figures(): every endpoint answered 2xx; each endpoint with an expectation blocks
    or does not, as expected; and for each with a deferred counterpart, the counterpart kept up at a rate where it
    ran away, and its S is within blocks_min_ms of the model's S without the slow span (a difference the notebook
    would not call blocking)."""
    f = figures
    texts = {"answered": "every endpoint answered 2xx to every sequential request"}
    held = {"answered": f["all_2xx"]}
    for e in f["endpoints"]:
        n, c = e["name"], e["deferred_as"]
        if e["expect"]:
            texts[f"{n}_expect"] = f"{n} {e['expect']} its requests"
            held[f"{n}_expect"] = blocks(f, n) == (e["expect"] == "blocks")
        if c is None:
            continue
        texts[f"{n}_kept_up"] = f"{c} kept up at a rate where {n} ran away"
        held[f"{n}_kept_up"] = bool(f[f"{n}_ran_away"] and f[f"{c}_highest_held_rate"] is not None
                                    and f[f"{c}_highest_held_rate"] >= f[f"{n}_runaway_rate"])
        if f"{n}_without_span_s_ms" in f:
            texts[f"{n}_model"] = (f"{c}'s S within {f['blocks_min_ms']:g} ms of the model's: {n}'s S without its "
                                   f"{f[f'{n}_span']} span")
            held[f"{n}_model"] = abs(f[f"{c}_s_ms"] - f[f"{n}_without_span_s_ms"]) < f["blocks_min_ms"]
    return runs.claims(texts, held, quick)
