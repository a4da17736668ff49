"""The instruments' arithmetic on hand-made inputs: lifecycle table, backlog model, drain rate, polling model."""

import io

import numpy as np
import pandas as pd
import pytest
from django.core.files.uploadhandler import MemoryFileUploadHandler
from django.http.multipartparser import MultiPartParser

from helpers import lifecycle, queue_probe
from helpers import queue_experiments as qe
from helpers.client import multipart_body


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


def test_poll_interval_grows_by_the_backoff_up_to_the_cap():
    assert qe.poll_interval_after_idle(0.05, 0.1, 10, 1.15) == pytest.approx(0.1)
    assert qe.poll_interval_after_idle(0.15, 0.1, 10, 1.15) == pytest.approx(0.115)
    assert qe.poll_interval_after_idle(1e4, 0.1, 10, 1.15) == 10
    assert qe.poll_interval_after_idle(5, 0.005, 0.02, 1.15) == 0.02


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
