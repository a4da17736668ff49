"""Benchmarks: `python -m helpers bench NAME` runs one on the real stack and prints one JSON object as its
last line. Targets are judged on these figures, never inside a timed unit test."""

from __future__ import annotations

import json
import time

from helpers import experiments, runs
from helpers.stack import Lab

BENCHMARKS = {}


def benchmark(function):
    BENCHMARKS[function.__name__] = function
    return function


@benchmark
def overhead(fast_requests: int = 1000, blocking_requests: int = 60) -> dict:
    """The cost of one enqueue over a no-op request, and what deferring buys against sending inline."""
    run_dir = runs.new_run_dir("bench-overhead")
    with Lab(run_dir=run_dir) as lab:
        result = experiments.measure_overhead(lab, fast_requests, blocking_requests)
        config = lab.config
    noop, deferred, blocking = (result.p50(k) for k in ("noop", "deferred", "blocking"))
    figures = {
        "noop_p50_ms": round(noop, 3),
        "deferred_p50_ms": round(deferred, 3),
        "blocking_p50_ms": round(blocking, 3),
        "ratio_deferred_noop_p50": round(deferred / noop, 3),
        "speedup_blocking_deferred_p50": round(blocking / deferred, 1),
        "emails_requested": result.emails_requested,
        "emails_received": result.emails_received,
        "samples": {k: int(result.summary.loc[k, "n"]) for k in result.summary.index},
        "smtp_delay_s": config.smtp_delay_s,
        "web_workers": config.web_workers,
        "huey_synchronous": config.huey_synchronous,
        "delivery_wait_s": round(result.delivery_wait_s, 2),
        "run_dir": str(run_dir),
    }
    result.timings.to_csv(run_dir / "requests.csv", index=False)
    runs.write_metadata(run_dir, {"benchmark": "overhead", "figures": figures})
    return figures


def run(name: str) -> dict:
    if name not in BENCHMARKS:
        raise SystemExit(f"unknown benchmark {name!r}; choose from {', '.join(sorted(BENCHMARKS))}")
    started = time.monotonic()
    figures = BENCHMARKS[name]()
    figures["bench_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(figures))
    return figures
