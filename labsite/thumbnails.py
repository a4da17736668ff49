"""The CPU-bound job: a thumbnail and a BlurHash placeholder from an uploaded image, plus the upload's checks.

The job is written the way the libraries document it: Pillow's `Image.thumbnail` (for a JPEG it decodes at a
reduced scale, `draft`) and BlurHash, the placeholder a page shows while the thumbnail loads, computed with the
pure-Python `blurhash` package on a 100-pixel copy (its README's recipe). The two halves differ in a way that
matters to the consumer: Pillow's C code releases the GIL while it decodes, resizes and encodes; BlurHash is
Python bytecode and holds it. The result reports each half's time.

Uploads are checked in the request, before anything is stored or enqueued: the declared type, the byte size,
the header as Pillow reads it (format, pixel dimensions: a decompression bomb is refused before any pixel is
decoded), for PNG the chunk checksums (`verify`), then one decode within those caps, a JPEG at its smallest scale
(`draft`, 1/8). The decode is what catches a truncated JPEG, whose header and `verify` pass: refused here as a
4xx rather than failing in the job. It costs the request about 12 ms for the lab's 2400x1600 JPEG.

Accepted uploads go to a spool folder; the job consumes its file, so the queue carries a path, never megabytes.
"""

from __future__ import annotations

import time
import uuid
import warnings
from pathlib import Path

import blurhash
import numpy as np
from django.conf import settings
from PIL import Image, ImageOps, UnidentifiedImageError

from labsite.views.common import BadRequest

THUMBNAIL_BOX = (320, 320)
PLACEHOLDER_BOX = (100, 100)
PLACEHOLDER_COMPONENTS = (4, 3)
FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}
SUFFIXES = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp"}


class RefusedUpload(BadRequest):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def make_thumbnail(source: str) -> dict:
    """Thumbnail (JPEG) and BlurHash of the spooled image at `source`; removes the source, even on failure."""
    source_path = Path(source)
    started = time.perf_counter()
    try:
        with Image.open(source_path) as opened:
            source_size = opened.size
            image = ImageOps.exif_transpose(opened)
            image.thumbnail(THUMBNAIL_BOX)
            image = image.convert("RGB")
    finally:
        source_path.unlink(missing_ok=True)  # nothing retries a failed job: its upload would stay for good
    target = thumbnail_dir() / f"{source_path.stem}.jpg"
    image.save(target, "JPEG", quality=85)
    resized = time.perf_counter()
    small = image.copy()
    small.thumbnail(PLACEHOLDER_BOX)
    placeholder = blurhash.encode(np.asarray(small).tolist(), *PLACEHOLDER_COMPONENTS)
    done = time.perf_counter()
    return {"thumbnail": target.name, "width": image.width, "height": image.height,
            "source_width": source_size[0], "source_height": source_size[1], "bytes": target.stat().st_size,
            "blurhash": placeholder, "resize_s": resized - started, "placeholder_s": done - resized}


def spool_dir() -> Path:
    path = Path(settings.THUMBNAIL_SPOOL_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def thumbnail_dir() -> Path:
    path = Path(settings.THUMBNAIL_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def remove_stale_uploads(max_age_s: float | None = None, now: float | None = None) -> int:
    """Remove spooled uploads older than `max_age_s` (LAB_SPOOL_MAX_AGE_S); returns how many. A job removes its own
    upload, even when it fails, but not when it dies: its worker killed mid-job, or its task lost with a consumer
    (an at-most-once queue). Such an upload has no job left to consume it. The reconciler (`manage.py
    reconcile_jobs`) calls this every pass; the age must be longer than any upload's wait in the queue."""
    max_age_s = settings.LAB_SPOOL_MAX_AGE_S if max_age_s is None else max_age_s
    cutoff = (time.time() if now is None else now) - max_age_s
    removed = 0
    for path in Path(settings.THUMBNAIL_SPOOL_DIR).glob("*"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:  # its job consumed it meanwhile
            pass
    return removed


def spool(chunks, image_format: str) -> Path:
    """Write an accepted image into the spool under a fresh name; the job will consume it."""
    target = spool_dir() / f"{uuid.uuid4().hex}{SUFFIXES[image_format]}"
    with open(target, "wb") as out:
        for chunk in chunks:
            out.write(chunk)
    return target


def max_request_bytes() -> int:
    """The largest upload request: the image cap plus room for the multipart envelope."""
    return settings.THUMBNAIL_MAX_UPLOAD_BYTES + 64 * 1024


def accept_upload(request, field: str = "image") -> Path:
    """Validate the multipart upload `field` and spool it; raises RefusedUpload (a JSON 4xx) otherwise."""
    max_bytes = settings.THUMBNAIL_MAX_UPLOAD_BYTES
    declared_length = int(request.META.get("CONTENT_LENGTH") or 0)
    if declared_length > max_request_bytes():
        raise RefusedUpload(413, f"request body of {declared_length} bytes is over the {max_bytes}-byte cap")
    if not request.content_type.startswith("multipart/form-data"):
        raise RefusedUpload(415, f"send the image as multipart/form-data field '{field}'")
    uploads = request.FILES.getlist(field)
    if len(uploads) != 1:
        raise BadRequest(f"exactly one '{field}' file is required")
    upload = uploads[0]
    if upload.size > max_bytes:
        raise RefusedUpload(413, f"image of {upload.size} bytes is over the {max_bytes}-byte cap")
    expected_format = FORMATS.get(upload.content_type)
    if expected_format is None:
        raise RefusedUpload(415, f"content type {upload.content_type!r} is not one of {sorted(FORMATS)}")
    check_image(upload, expected_format)
    upload.seek(0)
    return spool(upload.chunks(), expected_format)


def check_image(file, expected_format: str) -> None:
    """Refuse what is not the declared format, is too large (read from the header) or does not decode."""
    max_pixels, max_side = settings.THUMBNAIL_MAX_PIXELS, settings.THUMBNAIL_MAX_SIDE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(file, formats=[expected_format])
        with opened as image:
            width, height = image.size
            if width > max_side or height > max_side or width * height > max_pixels:
                raise RefusedUpload(422, f"image is {width}x{height} pixels; the cap is {max_side} per side "
                                         f"and {max_pixels} pixels")
            image.verify()
        file.seek(0)
        with Image.open(file, formats=[expected_format]) as image:  # verify() leaves an image unusable
            image.draft(None, (1, 1))  # a JPEG decodes at 1/8 scale, still reading every byte; others in full
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise RefusedUpload(422, f"image refused as a decompression bomb: {exc}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise RefusedUpload(415, f"not a readable {expected_format} image") from exc
