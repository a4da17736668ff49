"""Notebook 03's arithmetic on hand-made inputs (helpers.experiments.work_still_happens and the instruments it reads):
lifecycle table, backlog model, drain rate, and the figures its verdict compares (paired worker-type ratios, task
integrity, status codes)."""

import io

import numpy as np
import pandas as pd
import pytest
from django.core.files.uploadhandler import MemoryFileUploadHandler
from django.http.multipartparser import MultiPartParser

from helpers.experiments import work_still_happens as qe
from helpers.instruments import lifecycle, queue_probe
from helpers.instruments.client import multipart_body


def events(*rows):
    return pd.DataFrame([{"ts": ts, "task_id": tid, "task": "labsite.tasks.job", "signal": sig, "duration": None,
                          "error": None} for ts, tid, sig in rows])


def test_lifecycle_has_one_row_per_task_with_each_state_and_its_count():
    frame = lifecycle.lifecycles(events(
        (10.000, "a", "enqueued"), (10.010, "a", "dequeued"), (10.011, "a", "executing"), (10.111, "a", "complete"),
        (10.005, "b", "enqueued"), (10.020, "b", "dequeued"), (10.021, "b", "executing"),
        (10.030, "b", "error"), (10.031, "b", "retrying"),
    )).set_index("task_id")
    assert frame.loc["a", "queue_wait_ms"] == pytest.approx(10)
    assert frame.loc["a", "pickup_to_start_ms"] == pytest.approx(1)
    assert frame.loc["a", "run_ms"] == pytest.approx(100)
    assert frame.loc["a", "end_to_end_ms"] == pytest.approx(111)
    assert frame.loc["b", "outcome"] == "error"
    assert frame.loc["b", "n_finished"] == 1  # "retrying" is not a finish: the task is enqueued again
    assert frame.loc["a", "task"] == "job"


def test_lifecycle_counts_a_state_recorded_twice():
    frame = lifecycle.lifecycles(events((1.0, "a", "enqueued"), (1.1, "a", "enqueued"), (1.2, "a", "dequeued")))
    assert frame.loc[0, "n_enqueued"] == 2 and frame.loc[0, "n_executing"] == 0
    assert np.isnan(frame.loc[0, "finished"])


def test_fluid_backlog_grows_at_the_excess_and_drains_at_capacity():
    t = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 10.0])
    assert list(qe.fluid_backlog(t, 40, 20, 2.0)) == [0, 20, 40, 20, 0, 0]
    assert list(qe.fluid_backlog(t, 10, 20, 2.0)) == [0] * 6


def test_drain_rate_reads_the_slope_between_90_and_10_percent_of_the_peak():
    t = np.arange(0, 2.0, 0.01)
    depth = np.clip(1000 - 1000 * (t - 0.5), 0, 1000).round()  # full for 0.5 s, then 1000 tasks/s
    assert queue_probe.drain_rate(pd.DataFrame({"t": t, "depth": depth})) == pytest.approx(1000, rel=0.03)


def test_time_average_weights_each_sample_by_how_long_it_held():
    assert qe.time_average(np.array([0.0, 1.0, 4.0]), np.array([10.0, 0.0, 5.0])) == pytest.approx(10 / 4)


def test_multipart_body_is_what_django_parses_as_one_file(tmp_path):
    image = tmp_path / "shot.png"
    image.write_bytes(b"\x89PNG fake bytes")
    body = multipart_body({"note": "hi"}, {"image": str(image)}, "b0undary")
    meta = {"CONTENT_TYPE": "multipart/form-data; boundary=b0undary", "CONTENT_LENGTH": str(len(body))}
    post, files = MultiPartParser(meta, io.BytesIO(body), [MemoryFileUploadHandler()]).parse()
    assert post["note"] == "hi"
    assert files["image"].read() == b"\x89PNG fake bytes"
    assert (files["image"].name, files["image"].content_type) == ("shot.png", "image/png")


def sweep_rows(ratios_by_repeat):
    """A worker sweep at 4 workers: thread workers at 10 tasks/s, process workers at 10 x the given ratio."""
    rows = []
    for repeat, ratio in enumerate(ratios_by_repeat):
        for worker_type, rate in (("thread", 10.0), ("process", 10.0 * ratio)):
            rows.append({"job": "thumbnail", "worker_type": worker_type, "workers": 4, "repeat": repeat,
                         "tasks": 16, "tasks_per_s": rate, "completed": 16, "states_once": 16})
    rows.append({"job": "thumbnail", "worker_type": "thread", "workers": 1, "repeat": 0, "tasks": 16,
                 "tasks_per_s": 99.0, "completed": 16, "states_once": 16})  # not at the most workers: left out
    return pd.DataFrame(rows)


def test_process_over_thread_is_the_median_of_the_paired_ratios_at_the_most_workers():
    sweep = sweep_rows([1.6, 0.7, 1.4])
    assert list(qe.paired_ratios(sweep)["process_over_thread"].round(3)) == [1.6, 0.7, 1.4]
    figures = qe.key_figures(sweep=sweep)
    assert figures["process_over_thread_thumbnail"] == pytest.approx(1.4)  # one slow pair does not decide
    assert (figures["sweep_workers"], figures["sweep_pairs"]) == (4, 3)


def test_task_integrity_counts_unfinished_tasks_and_states_not_recorded_once():
    followed = lifecycle.lifecycles(events(
        (1.0, "a", "enqueued"), (1.1, "a", "dequeued"), (1.2, "a", "executing"), (1.3, "a", "complete"),
        (2.0, "b", "enqueued"), (2.1, "b", "dequeued"), (2.2, "b", "executing"), (2.3, "b", "error"),
        (3.0, "c", "enqueued"), (3.0, "c", "enqueued"), (3.1, "c", "dequeued"), (3.2, "c", "executing"),
        (3.3, "c", "complete"),
    ))
    sweep = sweep_rows([1.0]).assign(completed=[16, 15, 16], states_once=[16, 16, 14])
    assert qe.task_integrity([followed], sweep) == {"tasks_followed": 3 + 48, "tasks_not_completed": 1 + 1,
                                                    "tasks_with_a_state_not_once": 1 + 2}
    assert qe.task_integrity([followed], None)["tasks_not_completed"] == 1


def test_status_codes_per_tasks_backend():
    frame = pd.DataFrame({"backend": ["huey", "huey", "immediate"], "status": [202, 202, 200]})
    assert qe.status_codes(frame) == {"huey": [202], "immediate": [200]}
