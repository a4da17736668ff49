"""Run folders: what an experiment writes can be read back, with the metadata that traces it; benchmarks and
notebooks report the same figures; notebook 00 compares a rerun with the reference."""

import inspect
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import runs
from helpers.instruments import wrk

WRK_OUTPUT = """Running 8s test @ http://127.0.0.1:40555/noop/
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.23ms    1.06ms  23.56ms   92.54%
    Req/Sec     2.47k   303.36     2.70k    95.65%
  Latency Distribution
     50%  812.00us
     75%    3.42ms
     90%    4.07ms
     99%    1.20s
  39613 requests in 8.10s, 10.99MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 7
Requests/sec:   4890.08
Transfer/sec:      1.36MB
"""


def test_run_folder_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_RUNS_DIR", str(tmp_path))
    run_dir = runs.new_run_dir("02-under-load")
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    frame = pd.DataFrame({"i": [0, 1, 2], "latency_ms": [1.5, 2.5, 300.0], "error": [None, None, "reset"]})
    runs.save_table(run_dir, "requests", frame)
    runs.write_metadata(run_dir, {"parameters": {"rate": 40}})
    runs.write_metadata(run_dir, {"figures": {"p50_ms": 2.5}})
    pd.testing.assert_frame_equal(runs.load_table(run_dir, "requests"), frame)
    meta = runs.read_metadata(run_dir)
    assert meta["parameters"] == {"rate": 40} and meta["figures"] == {"p50_ms": 2.5}
    assert meta["environment"]["packages"]["django"].startswith("6.1")
    assert meta["environment"]["cpu_count"] >= 1 and meta["environment"]["python"]
    assert runs.list_runs("02-under-load") == [run_dir]
    assert runs.list_runs("01-") == []


def test_wrk_output_is_parsed_with_its_units():
    figures = wrk.parse(WRK_OUTPUT)
    assert figures["rps"] == 4890.08 and figures["requests"] == 39613
    assert figures["p50_ms"] == 0.812 and figures["p75_ms"] == 3.42 and figures["p99_ms"] == 1200.0
    assert figures["socket_errors"] == 5 and figures["non_2xx"] == 7
    assert figures["mean_ms"] == 3.23 and figures["in_flight"] == pytest.approx(4890.08 * 3.23e-3)


def test_the_lab_latencies_get_wrks_coordinated_omission_correction():
    """wrk prints its latencies after stats_correct(): a sample of at least twice the expected interval (run time
    over requests per connection) gains one synthetic sample per interval below it, while above the interval."""
    from helpers.analysis.latency import as_wrk_reports

    quick = np.full(100, 1000)
    assert np.array_equal(as_wrk_reports(quick, run_s=0.15, connections=1), quick)  # interval 1,500 us: none long
    samples = np.append(np.full(99, 1000), 50_000)
    corrected = as_wrk_reports(samples, run_s=0.15, connections=1)
    added = np.sort(corrected[100:])
    assert np.array_equal(corrected[:100], samples)
    assert len(added) == 32 and added[0] == 2000 and added[-1] == 48_500 and set(np.diff(added)) == {1500}


def test_the_generator_is_held_against_wrk_beside_it_at_the_concurrency_it_kept():
    from helpers.experiments.under_load import harness_figures

    def row(tool, trial, connections, p50, rps=1000.0, in_flight=float("nan")):
        return {"tool": tool, "trial": trial, "connections": connections, "rps": rps, "p50_ms": p50,
                "p99_ms": 2 * p50, "p50_raw_ms": p50 * 0.9, "in_flight": in_flight, "littles_law": in_flight,
                "littles_law_raw": in_flight, "cpu_us_per_request": 50.0, "errors": 0}

    # trial 0 kept 12 in flight (its lab p50 is held against wrk at 12); trial 1 kept 16
    turns = pd.DataFrame([row("wrk", 0, 16, 4.0), row("lab", 0, 16, 3.0, in_flight=12.2),
                          row("wrk matched", 0, 12, 3.2), row("lab", 1, 16, 3.8, in_flight=15.9),
                          row("wrk", 1, 16, 4.0)])
    figures = harness_figures(turns)
    assert figures["p50_ratio"] == pytest.approx((3.0 / 3.2 + 3.8 / 4.0) / 2, abs=1e-3)
    # the server's speed drifts between trials; each pair meets the same drift, and its ratio is what counts
    drift = pd.DataFrame([row("wrk", 0, 16, 4.0, rps=1000.0), row("lab", 0, 16, 4.0, rps=900.0, in_flight=16.0),
                          row("lab", 1, 16, 2.0, rps=1800.0, in_flight=16.0), row("wrk", 1, 16, 2.0, rps=2000.0),
                          row("wrk", 2, 16, 4.0, rps=1300.0), row("lab", 2, 16, 4.0, rps=1400.0, in_flight=16.0)])
    assert harness_figures(drift)["rps_ratio"] == pytest.approx(0.9)


def test_rerun_parameters_parse_like_python_literals():
    from helpers.runs import rerun

    assert rerun.parse_value("50") == 50
    assert rerun.parse_value("True") is True
    assert rerun.parse_value("0.25") == 0.25
    assert rerun.parse_value("[1, 2]") == [1, 2]
    assert rerun.parse_value("thread") == "thread"


def test_rerun_refuses_a_parameter_no_chosen_notebook_has():
    from helpers.runs import notebooks as notebook_files
    from helpers.runs import rerun

    first = next(p for p in notebook_files.notebooks() if p.name.startswith("01-"))
    assert "requests" in rerun.declared_parameters(first)
    with pytest.raises(SystemExit, match="no_such_knob"):
        rerun.rerun([first], {"no_such_knob": 1})



@pytest.mark.parametrize("name", [p.name for p in sorted(Path(__file__).parent.parent.glob("notebooks/*.ipynb"))])
def test_papermill_sees_every_knob_of_the_parameters_cell(name):
    """`python -m helpers run -p NAME VALUE` accepts only what papermill parsed: a comment holding a second "="
    makes it skip the line (warning "Unable to parse line"), and the knob cannot be set."""
    import ast

    import nbformat

    from helpers.runs import rerun

    path = Path(__file__).parent.parent / "notebooks" / name
    cell = next(c for c in nbformat.read(path, as_version=4).cells if "parameters" in c.metadata.get("tags", []))
    assigned = {t.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign) for t in node.targets}
    assert rerun.declared_parameters(path) == assigned

# -- a rerun shows its verdicts --------------------------------------------------------------------------------------

TINY_CELLS = [
    ("# Parameters (papermill). The fixture's apostrophes and colons: a comment papermill must not trip on\n"
     "holds = True   # the second claim's outcome: set False and the rerun's exit status says so\n"
     "quick = None", {"tags": ["parameters"]}),
    ("import matplotlib.pyplot as plt\n"
     "from helpers import runs\n"
     "from helpers.charts.common import show\n"
     "run_dir = runs.new_run_dir('tiny')\n"
     "fig, ax = plt.subplots()\n"
     "ax.plot([0, 1], [0, 1])\n"
     "show(fig, run_dir, 'line', alt='A straight line from 0 to 1.')\n"
     "runs.record(run_dir, {'answer_ms': 42.0}, {'holds': holds}, notebook='tiny')", {}),
    ("# NBVAL_CHECK_OUTPUT\n"
     "runs.verdict(run_dir, {'the first claim': True, 'the second claim': holds})", {"keep_output": True}),
]
WARNINGS = ("Unable to parse line", "Alternative text is missing", "without encryption")


@pytest.fixture(scope="module")
def tiny_notebook(tmp_path_factory):
    """A notebook as small as the lab's are shaped: parameters, a chart shown with its alt text, a verdict."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source, metadata=metadata) for source, metadata in TINY_CELLS]
    nb.metadata["kernelspec"] = {"name": "tasks-lab", "display_name": "Python (tasks lab)", "language": "python"}
    path = tmp_path_factory.mktemp("notebooks") / "tiny.ipynb"
    nbformat.write(nb, path)
    return path


def run_tiny(notebook, runs_dir, *parameters):
    import os
    import subprocess
    import sys

    env = {**os.environ, "LAB_RUNS_DIR": str(runs_dir)}
    done = subprocess.run([sys.executable, "-m", "helpers", "run", str(notebook), *parameters], capture_output=True,
                          text=True, env=env, cwd=Path(__file__).parent.parent, timeout=180)
    (run_dir,) = [p for p in runs_dir.iterdir() if p.name.endswith("-rerun")]
    return done, run_dir


@pytest.mark.parametrize("holds", [True, False])
def test_a_rerun_prints_every_verdict_line_records_them_and_fails_when_a_claim_failed(tiny_notebook, tmp_path, holds):
    """`python -m helpers run`: the one-screen summary lists each claim with PASS or FAIL, summary.json records
    them, the exit status is 1 when one failed; and no spurious warning (papermill's parameter parser, nbconvert's
    missing alt text, the kernel's unencrypted TCP) reaches the user."""
    import json

    done, run_dir = run_tiny(tiny_notebook, tmp_path, "-p", "holds", str(holds))
    output = done.stdout + done.stderr
    assert done.returncode == (0 if holds else 1), output
    assert "PASS  the first claim" in done.stdout
    assert f"{'PASS' if holds else 'FAIL'}  the second claim" in done.stdout
    assert ("FAILED: 1 claim(s) failed" in done.stdout) != holds
    entry = json.loads((run_dir / "summary.json").read_text())["notebooks"]["tiny"]
    assert entry["verdict"] == {"the first claim": True, "the second claim": holds}
    assert entry["figures"] == {"answer_ms": 42.0} and entry["status"] == "ok"
    assert [w for w in WARNINGS if w in output] == []
    assert 'alt="A straight line from 0 to 1."' in (run_dir / entry["html"]).read_text()


def test_a_rerun_fails_when_a_notebook_did_not_finish_even_with_no_claim_failed():
    from helpers.runs import rerun

    ok = {"status": "ok", "verdict": {"a": True}}
    assert rerun.succeeded({"notebooks": {"x": ok}})
    assert not rerun.succeeded({"notebooks": {"x": ok, "y": {"status": "failed"}}})
    assert rerun.failed_claims({"notebooks": {"x": {"status": "ok", "verdict": {"a": True, "b": False}}}}) == ["x: b"]


# -- one source per figure: `python -m helpers bench NAME` prints what its notebook records -------------------------

# Every experiments module's benchmark, named after it (under_load has a second one, named after it too).
BENCHMARKS = {"blocking_vs_deferred", "under_load", "under_load_harness", "work_still_happens", "what_the_user_sees",
              "faults", "scale_out", "which_queue", "which_setup", "does_async_fix_it", "hostile_input"}
# Their earlier names, which the README and the open issues use: still accepted.
ALIASES = {"overhead", "harness", "queue", "browser", "backends", "queues", "async", "hostile"}
# Notebook -> its experiments module, for the notebooks whose benchmark returns key_figures() alone.
NOTEBOOK_MODULES = {"01-blocking-vs-deferred": "blocking_vs_deferred", "02-under-load": "under_load",
                    "04-what-the-user-sees": "what_the_user_sees"}


def test_every_benchmark_is_registered_by_an_experiments_module_with_key_figures():
    import importlib

    from helpers.runs import bench

    found = bench.discover()
    assert set(found) >= BENCHMARKS, f"missing benchmarks: {BENCHMARKS - set(found)}"
    for name, function in found.items():
        assert function.__module__.startswith("helpers.experiments."), (name, function.__module__)
        module = importlib.import_module(function.__module__)
        assert callable(getattr(module, "key_figures", None)), f"{function.__module__} has no key_figures()"
        assert next(iter(inspect.signature(function).parameters)) == "run_dir", f"{name}: run_dir comes first"
        assert name.startswith(function.__module__.rsplit(".", 1)[1]), f"{name} is not named after its module"


def test_an_earlier_name_runs_the_benchmark_it_became(monkeypatch):
    from helpers.runs import bench, folders

    ran = []
    bench.discover()
    monkeypatch.setitem(bench.BENCHMARKS, "which_setup", lambda run_dir, n=1: ran.append(n) or {"n": n})
    monkeypatch.setattr(folders, "new_run_dir", lambda name: ran.append(name) or Path("/nonexistent"))
    monkeypatch.setattr(folders, "record", lambda run_dir, figures, parameters, **meta: {**figures, **meta})
    assert bench.run("queues", {"n": 2})["benchmark"] == "which_setup"
    assert ran == ["bench-which_setup", 2]
    assert set(bench.ALIASES) == ALIASES and set(bench.ALIASES.values()) <= BENCHMARKS


def test_the_command_line_offers_every_benchmark():
    """`python -m helpers bench NAME` in a fresh interpreter: its choices are the benchmarks the experiments
    modules register, which only exist once discover() has imported them."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "helpers", "bench", "--help"], capture_output=True, text=True,
                          cwd=Path(__file__).parent.parent, timeout=60)
    assert done.returncode == 0, done.stderr
    offered = done.stdout.split("{", 1)[1].split("}", 1)[0].split(",")
    assert set(offered) >= BENCHMARKS | ALIASES, done.stdout

@pytest.mark.parametrize("notebook,module", NOTEBOOK_MODULES.items())
def test_the_notebook_records_the_key_figures_of_its_experiments_module(notebook, module):
    """The notebook calls the very key_figures() its benchmark returns, records them with runs.record, shows every
    chart with a text alternative and ends with runs.verdict on its module's verdict()."""
    import nbformat

    from helpers.runs import notebooks as notebook_files

    path = next(p for p in notebook_files.notebooks() if p.stem == notebook)
    code = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    source = "\n".join(code)
    assert f"from helpers.experiments import {module}" in source
    assert f"runs.record(run_dir, {module}.key_figures(" in source
    assert f'notebook="{notebook}"' in source
    assert ".to_csv(" not in source and "savefig(" not in source and "plt.subplots(" not in source
    assert source.count("show(") == source.count("alt=") >= 1
    assert code[-1].startswith("# NBVAL_CHECK_OUTPUT") and f"runs.verdict(run_dir, {module}.verdict(" in code[-1]
    assert "lab.stop()" in "\n".join(code[:-1])


class FakeLab:
    """Stands for Lab in a benchmark under test: no server starts, the measurement is replaced."""

    def __init__(self, **config):
        self.config = config

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def overhead_result():
    from helpers.analysis import latency
    from helpers.experiments.blocking_vs_deferred import OverheadResult

    rows = [("noop", 200, 1.0 + i / 10, i < 2) for i in range(12)]
    rows += [("deferred", 202, 1.5 + i / 10, i < 2) for i in range(12)]
    rows += [("blocking", 200, 300.0 + i, i < 1) for i in range(6)]
    rows += [("deferred", 500, 2.0, False)]  # one failed request
    timings = pd.DataFrame(rows, columns=["label", "status", "total_ms", "warmup"])
    return OverheadResult(timings, latency.summarize(timings[~timings["warmup"]]), 18, 18, 0.5, 0, 0)


def test_overhead_key_figures_compare_the_endpoints_p50():
    from helpers.experiments.blocking_vs_deferred import key_figures

    figures = key_figures(overhead_result())
    assert figures["noop_p50_ms"] == pytest.approx(1.65)  # 1.2 ... 2.1: the warm-ups are left out
    assert figures["deferred_p50_ms"] == pytest.approx(2.1)  # 1.7 ... 2.6 and the failed request's 2.0
    assert figures["blocking_p50_ms"] == pytest.approx(303.0)
    assert figures["ratio_deferred_noop_p50"] == pytest.approx(2.1 / 1.65, abs=1e-3)
    assert figures["speedup_blocking_deferred_p50"] == pytest.approx(303.0 / 2.1, abs=0.05)
    assert figures["failed_requests"] == 1
    assert figures["samples"] == {"noop": 10, "deferred": 11, "blocking": 5}


def under_load_result():
    """Four web workers, S = 0.1 s (c/S = 40/s): three open-loop rates per endpoint, two closed-loop user counts."""
    from helpers.experiments.under_load import UnderLoad

    def point(endpoint, mode, level, throughput, p50, p99, web, consumer, lag):
        return {"endpoint": endpoint, "mode": mode, "level": level, "trial": 0, "requests": 100, "errors": 0,
                "non_2xx": 0, "throughput": throughput, "latency_p50_ms": p50, "latency_p99_ms": p99,
                "service_p99_ms": p99 - lag, "cpu_web_pct": web, "cpu_consumer_pct": consumer, "lag_p99_ms": lag}

    open_points = pd.DataFrame([
        point("blocking", "open", 20.0, 20.0, 101.0, 130.0, 5.0, 0.2, 1.0),
        point("blocking", "open", 36.0, 35.0, 120.0, 300.0, 8.0, 0.1, 2.0),
        point("blocking", "open", 48.0, 39.0, 700.0, 1500.0, 9.0, 0.3, 7.5),
        point("deferred", "open", 20.0, 20.0, 2.0, 6.0, 2.0, 3.0, 1.0),
        point("deferred", "open", 36.0, 36.0, 2.5, 9.0, 3.0, 6.0, 1.0),
        point("deferred", "open", 48.0, 48.0, 3.0, 12.0, 4.0, 8.0, 4.0),
    ])
    closed_points = pd.DataFrame([point("blocking", "closed", 1, 9.5, 105.0, 120.0, 3.0, 0.1, 0.0),
                                  point("blocking", "closed", 8, 38.0, 210.0, 260.0, 9.0, 0.1, 0.0)])
    # Closed loop: N = 1 at 9.5/s with a mean of 100 ms (X W = 0.95); N = 8 at 38/s with 200 ms (7.6), its
    # 5-second warm-up request left out. Both are 5 % short of N.
    records = pd.DataFrame({"mode": ["closed"] * 6 + ["open"], "level": [1, 1, 8, 8, 8, 8, 20.0],
                            "latency_ms": [90.0, 110.0, 150.0, 250.0, 200.0, 5000.0, 1.0],
                            "warmup": [False, False, False, False, False, True, False],
                            "error": [None] * 7})
    return UnderLoad(open_points, closed_points, records, service_s=0.1, web_workers=4)


def test_under_load_key_figures_pick_the_points_each_claim_needs():
    from helpers.experiments.under_load import key_figures

    figures = key_figures(under_load_result())
    assert figures["capacity_c_over_s"] == 40.0
    assert figures["rates_at_or_above_capacity"] == [48.0]
    assert figures["saturation_throughput"] == 39.0 and figures["saturation_ratio"] == 0.975
    assert figures["deferred_p99_ms_at_saturation"] == 12.0
    assert figures["deferred_service_p99_ms_at_saturation"] == 8.0  # the generator's 4 ms lag apart
    assert figures["blocking_p50_ms_lowest_rate"] == 101.0 and figures["blocking_p99_ms_lowest_rate"] == 130.0
    assert figures["blocking_p99_ms_below_capacity"] == 300.0  # 36/s, the highest rate below c/S
    assert figures["blocking_p99_ms_highest_rate"] == 1500.0
    assert figures["deferred_p50_ms_max"] == 3.0
    assert figures["blocking_cpu_web_pct_highest_rate"] == 9.0
    assert figures["consumer_cpu_pct_deferred_highest_rate"] == 8.0
    assert figures["consumer_cpu_pct_blocking_highest_rate"] == 0.3
    assert figures["closed_users_max"] == 8 and figures["closed_throughput_max"] == 38.0
    assert figures["closed_p99_ms_most_users"] == 260.0
    assert figures["closed_littles_law_max_error"] == 0.05
    assert figures["generator_lag_p99_ms_max"] == 7.5
    assert figures["requests"] == 800


def browser_result():
    from helpers.experiments.what_the_user_sees import BROWSER_METRICS, BrowserResult

    rows = []
    for variant in ("form", "fetch", "xhr"):
        for path, server_ms in (("blocking", 300.0), ("deferred", 2.0)):
            for trial in range(3):
                metrics = dict.fromkeys(BROWSER_METRICS, 10.0 + trial)
                metrics["ttfb_ms"] = server_ms + 10 * trial if variant == "form" else 20.0
                metrics["inp_ms"] = server_ms + trial if variant == "xhr" else 16.0
                rows.append({"variant": variant, "path": path, "trial": trial, "warmup": trial == 0,
                             "label": f"{variant}/{path}", "error": None, "state": "delivered",
                             "browser": "156.0", **metrics})
    trials = pd.DataFrame(rows)
    trials.loc[(trials["variant"] == "form") & (trials["path"] == "deferred"), "inp_ms"] = None  # none reported
    return BrowserResult(trials, emails_requested=18, emails_received=18, delivery_wait_s=0.5)


def test_browser_key_figures_are_medians_per_variant_and_path():
    from helpers.experiments.what_the_user_sees import key_figures

    figures = key_figures(browser_result())
    assert figures["ttfb_blocking_ms"] == 315.0 and figures["ttfb_deferred_ms"] == 17.0  # trials 1 and 2
    assert figures["ttfb_fetch_blocking_ms"] == 20.0
    assert figures["inp_xhr_blocking_ms"] == 301.5 and figures["inp_blocking_ms"] == 16.0
    assert figures["inp_form_deferred_ms"] is None
    assert figures["inp_reported"]["form/deferred"] == 0 and figures["inp_reported"]["form/blocking"] == 2
    assert figures["trials_per_variant"] == 2 and figures["failed_trials"] == 0


@pytest.mark.parametrize("benchmark,measure,result", [
    ("blocking_vs_deferred", "measure_overhead", overhead_result),
    ("under_load", "measure_under_load", under_load_result),
    ("what_the_user_sees", "measure_browser", browser_result),
])
def test_the_benchmark_returns_the_notebooks_key_figures_and_nothing_else(benchmark, measure, result, tmp_path,
                                                                         monkeypatch):
    """`python -m helpers bench NAME` and the notebook report the same names: the benchmark returns exactly the
    key_figures() of what it measured (here a fixed result, so no server starts)."""
    import importlib

    from helpers.runs import bench

    function = bench.discover()[benchmark]
    module = importlib.import_module(function.__module__)
    measured = result()
    monkeypatch.setattr(module, "Lab", FakeLab)
    monkeypatch.setattr(module, measure, lambda *args, **kwargs: measured)
    figures = function(tmp_path)
    assert list(figures) == list(module.key_figures(measured))
    assert runs.plain(figures) == runs.plain(module.key_figures(measured))


# -- notebook 00: a rerun against the reference ---------------------------------------------------------------------


def summary(figures_by_notebook: dict, status: str = "ok") -> dict:
    return {"notebooks": {name: {"status": status, "figures": figures}
                          for name, figures in figures_by_notebook.items()}}


def test_compare_gives_one_ratio_per_numeric_figure_present_in_both():
    from helpers.runs import compare

    reference = summary({"01-x": {"a_ms": 2.0, "b": 10, "zero": 0, "still_zero": 0, "gone": 1.0,
                                  "nested": {"n": 1}}, "02-y": {"c": 4.0}})
    latest = summary({"01-x": {"a_ms": 3.0, "b": 5, "zero": 1, "still_zero": 0, "new": 7.0, "flag": True}})
    table = compare.compare(reference, latest).set_index("figure")
    assert sorted(table.index) == ["a_ms", "b"]  # no ratio to a reference of 0: those are listed apart
    assert table.loc["a_ms", "ratio"] == 1.5 and table.loc["b", "ratio"] == 0.5
    assert compare.zeros(reference, latest).set_index("figure")["latest"].to_dict() == {"zero": 1, "still_zero": 0}
    figures = compare.comparison_figures(reference, latest, table.reset_index())
    assert figures["figures_compared"] == 2 and figures["ratios_finite"] == 2 and figures["ratios_in_band"] == 0
    assert figures["zero_in_reference"] == 2 and figures["zero_in_reference_nonzero_now"] == 1
    assert figures["notebooks_compared"] == 1 and figures["compared_notebooks_not_ok"] == []
    assert figures["ratio_min"] == 0.5 and figures["ratio_max"] == 1.5


def test_comparison_figures_name_incomplete_summaries():
    from helpers.runs import compare

    reference = summary({"01-x": {"a": 1.0}, "02-y": {}})
    latest = summary({"01-x": {"a": 1.1}}, status="failed")
    figures = compare.comparison_figures(reference, latest, compare.compare(reference, latest))
    assert figures["reference_notebooks_without_figures"] == ["02-y"]
    assert figures["compared_notebooks_not_ok"] == ["01-x"]
    assert figures["ratios_in_band"] == 1


def test_the_latest_rerun_is_found_by_its_summary(tmp_path, monkeypatch):
    """A rerun folder holds summary.json and no run.json: notebook 00 must still find the newest one."""
    from helpers.runs import compare

    monkeypatch.setenv("LAB_RUNS_DIR", str(tmp_path))
    assert compare.latest_rerun_summary() is None
    for name in ("20260101T000000-rerun", "20260102T000000-rerun", "20260103T000000-01-blocking-vs-deferred"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text("{}")
    (tmp_path / "20260102T000000-rerun-2").mkdir()  # a second rerun in the same second, not finished
    assert compare.latest_rerun_summary() == tmp_path / "20260102T000000-rerun" / "summary.json"
    named = tmp_path / "chosen.json"
    assert compare.summary_to_compare(named) == named
    assert compare.summary_to_compare(None) == compare.latest_rerun_summary()
