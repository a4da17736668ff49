"""The thumbnail job and its upload checks, and Django's Tasks API path, through Django's test client."""

import io
import struct
import zlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.tasks import task_backends
from django.tasks.backends.immediate import ImmediateBackend
from PIL import Image

from helpers.instruments import images
from labsite import thumbnails

PATHS = ["/thumbnails/blocking/", "/thumbnails/deferred/", "/djtasks/thumbnails/"]


@pytest.fixture(scope="module")
def jpeg_bytes():
    return images.encode(images.render(600, 400), "JPEG")


@pytest.fixture
def spool(settings, tmp_path):
    settings.THUMBNAIL_SPOOL_DIR = tmp_path / "uploads"
    settings.THUMBNAIL_DIR = tmp_path / "thumbnails"
    return tmp_path


@pytest.fixture
def immediate_tasks():
    """Django's ImmediateBackend in place of Huey's: what LAB_TASKS_BACKEND=immediate configures."""
    task_backends["default"] = ImmediateBackend("default", {})
    yield
    del task_backends["default"]


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares `width` x `height` but carries almost no pixel data: a decompression bomb's header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        chunk(b"IEND", b"")


def upload(data: bytes, content_type: str = "image/jpeg", name: str = "photo.jpg") -> dict:
    return {"image": SimpleUploadedFile(name, data, content_type)}


def spooled(tmp_path) -> list:
    folder = tmp_path / "uploads"
    return list(folder.iterdir()) if folder.exists() else []


def test_blocking_makes_the_thumbnail_and_placeholder_before_answering(client, spool, jpeg_bytes):
    response = client.post("/thumbnails/blocking/", upload(jpeg_bytes))
    assert response.status_code == 200
    result = response.json()["result"]
    assert (result["source_width"], result["source_height"]) == (600, 400)
    assert max(result["width"], result["height"]) == thumbnails.THUMBNAIL_BOX[0]
    assert len(result["blurhash"]) == 4 + 2 * thumbnails.PLACEHOLDER_COMPONENTS[0] * \
        thumbnails.PLACEHOLDER_COMPONENTS[1]
    with Image.open(spool / "thumbnails" / result["thumbnail"]) as made:
        assert made.format == "JPEG" and made.size == (result["width"], result["height"])
    assert spooled(spool) == []  # the job consumed its upload


def test_deferred_spools_the_upload_and_enqueues_its_path(client, spool, huey_queue, jpeg_bytes):
    response = client.post("/thumbnails/deferred/", upload(jpeg_bytes))
    assert response.status_code == 202
    [task] = huey_queue.pending()
    assert task.id == response.json()["task_id"]
    [source] = spooled(spool)
    assert task.args == (str(source),)
    assert source.read_bytes() == jpeg_bytes
    huey_queue.execute(huey_queue.dequeue())
    status = client.get(f"/tasks/{task.id}/").json()
    assert status["state"] == "delivered"
    assert (spool / "thumbnails" / status["result"]["thumbnail"]).exists()


BAD_UPLOADS = {
    "not an image": (lambda jpeg: upload(b"hello, not an image" * 20), 415),
    "declared type differs from content": (lambda jpeg: upload(jpeg, "image/png", "photo.png"), 415),
    "type not accepted": (lambda jpeg: upload(jpeg, "image/gif", "photo.gif"), 415),
    "truncated PNG": (lambda jpeg: upload(images.encode(images.render(300, 200), "PNG")[:5000], "image/png"), 415),
    "too many pixels (decompression bomb header)": (lambda jpeg: upload(png_header_only(20_000, 20_000),
                                                                        "image/png", "bomb.png"), 422),
    "over the pixel cap": (lambda jpeg: upload(png_header_only(8_000, 6_000), "image/png", "big.png"), 422),
    "one side too long": (lambda jpeg: upload(png_header_only(13_000, 10), "image/png", "strip.png"), 422),
    "no file": (lambda jpeg: {"other": "x"}, 400),
    "two files": (lambda jpeg: {"image": [SimpleUploadedFile("a.jpg", jpeg, "image/jpeg"),
                                          SimpleUploadedFile("b.jpg", jpeg, "image/jpeg")]}, 400),
}


@pytest.mark.parametrize("case", BAD_UPLOADS, ids=list(BAD_UPLOADS))
@pytest.mark.parametrize("path", PATHS)
def test_bad_upload_is_a_json_4xx_and_nothing_is_spooled_or_queued(client, spool, huey_queue, jpeg_bytes, path,
                                                                   case):
    make_form, status = BAD_UPLOADS[case]
    response = client.post(path, make_form(jpeg_bytes))
    assert response.status_code == status
    assert response.json()["error"]
    assert huey_queue.pending_count() == 0
    assert spooled(spool) == []


def truncated_jpeg(keep: float) -> bytes:
    """A real JPEG cut short: its header and `verify()` pass, its decode fails ("image file is truncated"). The image
    is the lab's seeded 600x400 one: whether a JPEG without its end-of-image marker still decodes whole depends on
    its content (2 of 40 unseeded Image.effect_noise images did, and so does the 640x480 render), and the site then
    rightly accepts it."""
    data = images.encode(images.render(600, 400), "JPEG")
    return data[:int(len(data) * keep)] if keep < 1 else data[:-2]  # keep=1: all but the end-of-image marker


@pytest.mark.parametrize("keep", [0.5, 0.95, 1], ids=["half", "most", "all-but-EOI"])
@pytest.mark.parametrize("path", PATHS)
def test_a_truncated_jpeg_is_refused_in_the_request_and_leaves_no_spooled_file(client, spool, huey_queue, path,
                                                                             keep):
    response = client.post(path, upload(truncated_jpeg(keep)))
    assert response.status_code == 415  # as a truncated PNG: not a readable image of the declared type
    assert response.json() == {"error": "not a readable JPEG image"}
    assert huey_queue.pending_count() == 0
    assert spooled(spool) == []


def test_a_job_that_fails_still_removes_its_spooled_upload(spool):
    """Nothing retries a failed thumbnail job, so its upload must not stay in the spool for good."""
    source = thumbnails.spool_dir() / "cut.jpg"
    source.write_bytes(truncated_jpeg(0.5))
    with pytest.raises(OSError, match="truncated"):
        thumbnails.make_thumbnail(str(source))
    assert spooled(spool) == []


@pytest.mark.django_db  # the pass reads the ledger too
def test_the_reconciler_removes_uploads_whose_job_died_and_keeps_fresh_ones(spool, settings, huey_queue):
    """A job killed mid-run (or lost with its consumer) never removes its upload: the reconciler's pass removes
    spooled files older than LAB_SPOOL_MAX_AGE_S."""
    import os
    import time

    from django.core.management import call_command

    settings.LAB_SPOOL_MAX_AGE_S = 60
    orphan, waiting = thumbnails.spool_dir() / "orphan.jpg", thumbnails.spool_dir() / "waiting.jpg"
    orphan.write_bytes(b"x")
    waiting.write_bytes(b"x")
    old = time.time() - 61
    os.utime(orphan, (old, old))
    call_command("reconcile_jobs", "--once", stdout=io.StringIO())
    assert spooled(spool) == [waiting]


@pytest.mark.parametrize("path", ["/thumbnails/deferred/", "/djtasks/thumbnails/"])
def test_a_full_backlog_sheds_an_upload_with_503_before_spooling_it(client, spool, huey_queue, settings,
                                                                     jpeg_bytes, path):
    settings.LAB_MAX_BACKLOG = 1
    assert client.post(path, upload(jpeg_bytes)).status_code == 202
    thumbnails_waiting = spooled(spool)
    refused = client.post(path, upload(jpeg_bytes))
    assert refused.status_code == 503 and int(refused["Retry-After"]) >= 1
    assert huey_queue.pending_count() == 1 and spooled(spool) == thumbnails_waiting


@pytest.mark.parametrize("path", PATHS)
def test_upload_over_the_byte_cap_is_a_413(client, spool, huey_queue, settings, jpeg_bytes, path):
    settings.THUMBNAIL_MAX_UPLOAD_BYTES = len(jpeg_bytes) - 1
    response = client.post(path, upload(jpeg_bytes))
    assert response.status_code == 413
    assert "cap" in response.json()["error"]
    assert huey_queue.pending_count() == 0 and spooled(spool) == []


def test_a_form_encoded_body_is_a_415(client, huey_queue):
    response = client.post("/thumbnails/deferred/", "image=abc", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert huey_queue.pending_count() == 0


def test_wrong_method_is_a_json_405(client):
    assert client.get("/thumbnails/deferred/").status_code == 405
    assert client.get("/djtasks/email/").status_code == 405


@pytest.mark.django_db  # the Tasks API shim closes stale DB connections around the task, as db_task does
def test_djtasks_on_huey_enqueue_the_same_job_and_report_it(client, huey_queue, mailoutbox):
    response = client.post("/djtasks/email/", {"to": "dj@example.test"})
    assert response.status_code == 202
    result_id = response.json()["task_id"]
    assert response["Location"] == f"/djtasks/{result_id}/"
    assert [t.id for t in huey_queue.pending()] == [result_id]
    assert client.get(f"/djtasks/{result_id}/").json()["state"] == "queued"
    huey_queue.execute(huey_queue.dequeue())
    status = client.get(f"/djtasks/{result_id}/").json()
    assert status["state"] == "delivered"
    assert status["result"]["message_id"] == mailoutbox[0].extra_headers["Message-ID"]


def test_djtasks_on_the_immediate_backend_run_in_the_request(client, huey_queue, mailoutbox, immediate_tasks):
    response = client.post("/djtasks/email/", {"to": "now@example.test"})
    assert response.status_code == 200
    assert response.json()["state"] == "delivered"
    assert len(mailoutbox) == 1 and huey_queue.pending_count() == 0


def test_djtasks_bad_address_is_a_400_and_nothing_is_queued(client, huey_queue, mailoutbox):
    assert client.post("/djtasks/email/", {"to": "nope"}).status_code == 400
    assert huey_queue.pending_count() == 0 and mailoutbox == []


def test_djtask_status_of_an_unknown_id_is_404(client, huey_queue):
    assert client.get("/djtasks/no-such-result/").status_code == 404
