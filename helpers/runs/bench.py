"""The benchmark harness: `python -m helpers bench NAME`. Like pyperf's Runner, it owns the bookkeeping so each
benchmark only defines its workload: a run folder, the parameters (the benchmark function's keyword defaults),
the figures in run.json beside the machine and versions, and one plain-JSON object as the last line printed.

A benchmark lives in the experiments module of its notebook, is named after it, and returns the same key_figures()
the notebook records, so a figure has one source:

    @benchmark("blocking_vs_deferred", aliases=("overhead",))
    def overhead(run_dir, fast_requests=1000, blocking_requests=60) -> dict:
        with Lab(run_dir=run_dir) as lab:
            return key_figures(measure_overhead(lab, fast_requests, blocking_requests))

Targets are judged on these figures, never inside a timed unit test. A benchmark whose figures carry a non-empty
`claims_failed` (the claims of its verdict that failed) exits 1 after printing them.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import time
from collections.abc import Callable

from helpers.runs import folders

BENCHMARKS: dict[str, Callable[..., dict]] = {}
ALIASES: dict[str, str] = {}  # an earlier name -> the benchmark's name


def benchmark(name: str, aliases: tuple[str, ...] = ()):
    """Register `function(run_dir, **parameters) -> figures` as `python -m helpers bench name` (its experiments
    module's name, or that name and what it measures when the module has two), and as each of `aliases`."""

    def decorator(function):
        BENCHMARKS[name] = function
        ALIASES.update(dict.fromkeys(aliases, name))
        return function

    return decorator


def discover() -> dict[str, Callable[..., dict]]:
    """Import every experiments module: each registers its benchmarks."""
    from helpers import experiments

    for module in pkgutil.iter_modules(experiments.__path__):
        importlib.import_module(f"{experiments.__name__}.{module.name}")
    return BENCHMARKS


def names() -> list[str]:
    """Every name `python -m helpers bench` accepts: the benchmarks' and their aliases."""
    return sorted({*discover(), *ALIASES})


def parameters_of(function: Callable) -> dict:
    return {name: p.default for name, p in inspect.signature(function).parameters.items()
            if p.default is not inspect.Parameter.empty}


def run(name: str, overrides: dict | None = None) -> dict:
    """Run one benchmark with its defaults, or `overrides` of them (`python -m helpers bench NAME -p kills 100`)."""
    benchmarks = discover()
    name = ALIASES.get(name, name)
    if name not in benchmarks:
        raise SystemExit(f"unknown benchmark {name!r}; choose from {', '.join(sorted(benchmarks))}")
    function = benchmarks[name]
    parameters = parameters_of(function)
    unknown = set(overrides or {}) - set(parameters)
    if unknown:
        raise SystemExit(f"bench {name} has no parameter {', '.join(sorted(unknown))}; it has {', '.join(parameters)}")
    parameters.update(overrides or {})
    run_dir = folders.new_run_dir(f"bench-{name}")
    started = time.monotonic()
    figures = function(run_dir, **parameters)
    seconds = round(time.monotonic() - started, 1)
    figures = folders.record(run_dir, figures, parameters, benchmark=name, bench_s=seconds)
    print(json.dumps({**figures, "bench_s": seconds, "run_dir": str(run_dir)}))
    if figures.get("claims_failed"):
        raise SystemExit(1)
    return figures
