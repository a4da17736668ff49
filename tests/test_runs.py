"""Run folders: what an experiment writes can be read back, with the metadata that traces it."""

import stat

import pandas as pd

from helpers import runs, wrk

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


def test_rerun_parameters_parse_like_python_literals():
    from helpers import rerun

    assert rerun.parse_value("50") == 50
    assert rerun.parse_value("True") is True
    assert rerun.parse_value("0.25") == 0.25
    assert rerun.parse_value("[1, 2]") == [1, 2]
    assert rerun.parse_value("thread") == "thread"


def test_rerun_refuses_a_parameter_no_chosen_notebook_has():
    import pytest

    from helpers import notebook_files, rerun

    first = next(p for p in notebook_files.notebooks() if p.name.startswith("01-"))
    assert "requests" in rerun.declared_parameters(first)
    with pytest.raises(SystemExit, match="no_such_knob"):
        rerun.rerun([first], {"no_such_knob": 1})
