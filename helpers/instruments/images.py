"""The lab's source image: made here, deterministically (no download), a few megapixels like a phone photo.

Smooth colour gradients and waves with seeded sensor-like noise: JPEG compresses it to about a megabyte, as
it would a photo, and every run gets the very same bytes. Files are cached by their parameters.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from helpers import runs

FORMAT_SUFFIXES = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}
CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}


def render(width: int = 2400, height: int = 1600, seed: int = 7, noise: float = 12.0) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    red = 255 * x / width
    green = 255 * y / height
    blue = 127.5 * (1 + np.sin(x / 97.0) * np.cos(y / 61.0))
    pixels = np.stack([red, green, blue], axis=-1) + rng.normal(0, noise, (height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def encode(image: Image.Image, image_format: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **({"quality": 90} if image_format in ("JPEG", "WEBP") else {}))
    return buffer.getvalue()


def source_image(width: int = 2400, height: int = 1600, image_format: str = "JPEG", seed: int = 7,
                 cache_dir: Path | None = None) -> Path:
    """Path of the source image with these parameters, rendered on first use."""
    folder = Path(cache_dir) if cache_dir else runs.runs_root() / "source-images"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"source-{width}x{height}-seed{seed}{FORMAT_SUFFIXES[image_format]}"
    if not path.exists():
        partial = path.with_suffix(".part")
        partial.write_bytes(encode(render(width, height, seed), image_format))
        partial.replace(path)
    return path
