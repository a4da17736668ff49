"""Per-task lifecycle recording, the thumbnail job and Django's Tasks API on the real stack (no mocks)."""

import json
import time

import pytest

from helpers.experiments import work_still_happens as qe
from helpers.instruments import enqueuer, images, lifecycle
from helpers.instruments.client import RequestSpec, time_requests
from helpers.protocols import pickup
from helpers.stack import Lab

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def lab():
    with Lab(smtp_delay_s=0.02, web_workers=1, consumer_workers=2, record_task_events=True,
             **pickup.TUNED_POLLING) as running:
        yield running


@pytest.fixture(scope="module")
def source_image(tmp_path_factory):
    return images.source_image(800, 600, cache_dir=tmp_path_factory.mktemp("images"))


def wait_for_json(lab, path, state, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = json.loads(lab.http.get(path).body)
        if body.get("state") == state:
            return body
        time.sleep(0.05)
    raise AssertionError(f"{path} never reached {state}: last {body}")


def test_recording_captures_every_state_once_per_task(lab, source_image):
    since = time.time()
    specs = [RequestSpec("email", "/email/deferred/", 3, "POST", {"to": "life{i}@example.test"}, warmup=0),
             RequestSpec("thumbnail", "/thumbnails/deferred/", 2, "POST", warmup=0, files={"image": str(source_image)})]
    timings = time_requests("127.0.0.1", lab.web_port, specs)
    assert set(timings["status"]) == {202}
    direct = enqueuer.enqueue(lab.django_env(), qe.enqueue_plan("noop", [0.0] * 4))
    tasks = lifecycle.wait_for_tasks(lab.stats_file, since, expected=9, timeout=60)
    assert len(tasks) == 9
    assert set(direct["task_id"]) <= set(tasks["task_id"])
    assert tasks["task"].value_counts().to_dict() == {"do_nothing": 4, "send_welcome_email": 3, "make_thumbnail": 2}
    for state in lifecycle.STATES:
        assert (tasks[f"n_{state}"] == 1).all(), state
    assert (tasks["outcome"] == "complete").all()
    assert (tasks["enqueued"] <= tasks["dequeued"]).all()
    assert (tasks["dequeued"] <= tasks["executing"]).all()
    assert (tasks["executing"] <= tasks["finished"]).all()
    assert (tasks["end_to_end_ms"] >= tasks["run_ms"]).all()


def test_a_failing_task_is_recorded_finished_once_with_its_error(lab, tmp_path):
    broken = tmp_path / "broken.jpg"  # passes no upload check: enqueued directly, it fails in the job
    broken.write_bytes(b"not a JPEG at all" * 10)
    since = time.time()
    enqueued = enqueuer.enqueue(lab.django_env(), enqueuer.EnqueuePlan("thumbnail", [0.0], source_image=str(broken)))
    [task] = lifecycle.wait_for_tasks(lab.stats_file, since, task_ids=enqueued["task_id"]).itertuples()
    assert task.outcome == "error"
    assert (task.n_enqueued, task.n_dequeued, task.n_executing, task.n_finished) == (1, 1, 1, 1)
    assert json.loads(lab.http.get(f"/tasks/{task.task_id}/").body)["state"] == "failed"


def test_queue_refills_while_the_consumer_is_stopped_and_drains_on_process_workers(lab):
    tasks = qe.drain(lab, "noop", 20, 2, "process")
    assert len(tasks) == 20 and (tasks["outcome"] == "complete").all()
    assert (tasks["n_dequeued"] == 1).all()  # recorded from forked worker processes too
    assert lab.queue_depth() == 0
    lab.start_consumer(consumer_workers=2, consumer_worker_type="thread")


def test_the_worker_sweep_alternates_the_types_and_pairs_each_repeat(lab):
    sweep = qe.worker_sweep(lab, {"noop": 12}, [2], ["thread", "process"], repeats=2)
    assert list(sweep["worker_type"]) == ["thread", "process", "process", "thread"]  # A B, then B A
    assert (sweep["completed"] == 12).all() and (sweep["states_once"] == 12).all()
    assert len(qe.paired_ratios(sweep)) == 2 and (sweep["tasks_per_s"] > 0).all()
    lab.start_consumer(consumer_workers=2, consumer_worker_type="thread")


def spooled(lab) -> set:
    return set((lab.run_dir / "uploads").glob("*"))


def test_thumbnail_deferred_on_the_real_consumer(lab, source_image):
    waiting = spooled(lab)  # a failed job leaves its upload in the spool
    since = time.time()
    timings = time_requests("127.0.0.1", lab.web_port, [
        RequestSpec("thumbnail", "/thumbnails/deferred/", 1, "POST", warmup=0, files={"image": str(source_image)})])
    assert list(timings["status"]) == [202]
    [task] = lifecycle.wait_for_tasks(lab.stats_file, since, expected=1).itertuples()
    status = wait_for_json(lab, f"/tasks/{task.task_id}/", "delivered")
    assert (lab.run_dir / "thumbnails" / status["result"]["thumbnail"]).exists()
    assert status["result"]["source_width"] == 800
    assert spooled(lab) == waiting  # the job consumed its upload


def test_bad_upload_on_the_real_server_is_refused_and_queues_nothing(lab, tmp_path):
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_bytes(b"plain text, not a PNG\n" * 10)
    depth = lab.queue_depth()
    timings = time_requests("127.0.0.1", lab.web_port, [
        RequestSpec("bad", "/thumbnails/deferred/", 2, "POST", warmup=0, files={"image": str(not_an_image)})])
    assert set(timings["status"]) == {415}
    assert lab.queue_depth() == depth


def test_django_tasks_api_runs_on_the_huey_consumer(lab):
    before = lab.mail.emails_received()
    response = lab.http.post("/djtasks/email/", {"to": "djtasks@example.test"})
    assert response.status == 202
    result_id = json.loads(response.body)["task_id"]
    status = wait_for_json(lab, f"/djtasks/{result_id}/", "delivered")
    lab.mail.wait_for_emails(before + 1, timeout=20)
    assert status["result"]["message_id"] in set(lab.mail.deliveries()["message_id"])
    [task] = lifecycle.wait_for_tasks(lab.stats_file, 0, task_ids=[result_id]).itertuples()
    assert task.n_dequeued == 1 and task.outcome == "complete"  # the consumer took it off Huey's queue


def test_the_immediate_queue_backend_runs_the_job_in_the_request():
    with Lab(smtp_delay_s=0.02, web_workers=1, consumer_workers=1, queue_backend="djtasks_immediate") as immediate:
        before = immediate.mail.emails_received()
        response = immediate.http.post("/djtasks/email/", {"to": "inline@example.test"})
        assert response.status == 200
        assert json.loads(response.body)["state"] == "delivered"
        assert immediate.mail.emails_received() == before + 1
        assert immediate.queue_depth() == 0
