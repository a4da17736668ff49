"""Hostile input through the real stack (issue 14; no notebook: `python -m helpers bench hostile_input`, and a quick
slice in tests/test_hostile_stack.py). tests/test_hostile_input.py fuzzes the views through Django's test client; this
sends raw bytes to gunicorn (its own HTTP parser) with the real SMTP backend behind the views, and checks what the test
client cannot see: no 5xx, no 2xx for a request that deserved a refusal, exactly one email or thumbnail per 2xx and none
per refusal, nothing left in the upload spool, and servers still healthy after. """

from __future__ import annotations

import io
import time
from dataclasses import dataclass

import pandas as pd
from PIL import Image

from helpers import runs
from helpers.instruments import hostile
from helpers.instruments.images import encode, render
from helpers.runs.bench import benchmark
from helpers.stack import Lab


def near_valid_images() -> dict[str, bytes]:
    """A small valid JPEG and its near-valid twins: cut short, a PNG whose first chunk fails its CRC, and text."""
    jpeg = encode(render(320, 240), "JPEG")
    buffer = io.BytesIO()
    Image.frombytes("RGB", (64, 48), bytes(64 * 48 * 3)).save(buffer, "PNG")
    png = bytearray(buffer.getvalue())
    png[29] ^= 0xFF  # the IHDR chunk's CRC (8-byte signature, 4 length, 4 type, 13 data, then the CRC)
    return {"jpeg": jpeg, "truncated": jpeg[: len(jpeg) // 2], "bad_crc_png": bytes(png),
            "text": b"this is not an image, whatever its name says\n"}


@dataclass
class HostileResult:
    rows: pd.DataFrame  # one per request: kind, what it deserved, the status it got
    copies: pd.Series  # emails the SMTP server accepted per request number (recipient fuzz<i>)
    thumbnails_made: int
    spool_left: int
    servers_alive: bool
    settle_s: float


def measure_hostile(lab: Lab, count: int, seed: int = 1, batch: int = 2500, settle_timeout_s: float = 120.0
                    ) -> HostileResult:
    """`count` hostile requests in batches from a client process, then wait until every queued email and thumbnail
    is done and the SMTP record is quiet."""
    images = near_valid_images()
    frames = [hostile.run("127.0.0.1", lab.web_port, min(batch, count - first), images, seed, first)
              for first in range(0, count, batch)]
    rows = pd.concat(frames, ignore_index=True)
    started = time.monotonic()
    lab.wait_until_drained(timeout=settle_timeout_s)
    quiet_since, seen = time.monotonic(), lab.mail.emails_received()
    while time.monotonic() - quiet_since < 1.0 and time.monotonic() - started < settle_timeout_s:
        time.sleep(0.1)
        if lab.mail.emails_received() != seen:
            quiet_since, seen = time.monotonic(), lab.mail.emails_received()
    spool, made = lab.run_dir / "uploads", lab.run_dir / "thumbnails"
    alive = lab.running and lab.http.get("/noop/").status == 200
    return HostileResult(rows, lab.mail.copies_by_number("fuzz"), len(list(made.glob("*"))) if made.exists() else 0,
                         len(list(spool.glob("*"))) if spool.exists() else 0, alive, time.monotonic() - started)


def key_figures(result: HostileResult) -> dict:
    """The figures `bench hostile_input` prints; tests/test_hostile_stack.py asserts the same ones on a quick slice."""
    rows = result.rows
    ok = rows["status"].between(200, 299)
    emails = rows["endpoint"].isin(hostile.EMAIL_ENDPOINTS)
    thumbnails = rows["endpoint"].isin(hostile.THUMBNAIL_ENDPOINTS)
    asked = rows.loc[ok & emails, "i"]
    copies = result.copies.reindex(asked, fill_value=0)
    return {
        "requests": len(rows),
        "status_5xx": int((rows["status"] >= 500).sum()),
        "no_answer": int(rows["status"].isna().sum()),
        "unexpected_2xx": int((ok & (rows["expect"] == "4xx")).sum()),
        "valid_refused": int((~ok & (rows["expect"] == "2xx")).sum()),
        "emails_for_2xx": len(asked),
        "emails_missing": int((copies == 0).sum()),
        "emails_duplicated": int((copies - 1).clip(lower=0).sum()),
        "emails_for_refusals": int(result.copies.drop(asked, errors="ignore").sum()),
        "thumbnails_for_2xx": int((ok & thumbnails).sum()),
        "thumbnails_made": result.thumbnails_made,
        "spool_left": result.spool_left,
        "servers_alive": result.servers_alive,
        "status_by_kind": {kind: {str(k): int(v) for k, v in group["status"].value_counts(dropna=False).items()}
                           for kind, group in rows.groupby("kind")},
    }


def failures(figures: dict) -> dict:
    """What must be zero (or true) for the site to have held: empty when it did."""
    wrong = {name: figures[name] for name in ("status_5xx", "no_answer", "unexpected_2xx", "valid_refused",
                                              "emails_missing", "emails_duplicated", "emails_for_refusals",
                                              "spool_left") if figures[name]}
    if figures["thumbnails_made"] != figures["thumbnails_for_2xx"]:
        wrong["thumbnails_made"] = (figures["thumbnails_made"], figures["thumbnails_for_2xx"])
    if not figures["servers_alive"]:
        wrong["servers_alive"] = False
    return wrong


HOSTILE_LAB = dict(smtp_delay_s=0.0, web_workers=4, consumer_workers=4, huey_log_level="WARNING",
                   consumer_initial_delay_s=0.01, consumer_max_delay_s=0.1)


@benchmark("hostile_input", aliases=("hostile",))
def hostile_bench(run_dir, requests: int = 10_000, seed: int = 1) -> dict:
    """`requests` hostile requests through gunicorn and the real SMTP backend."""
    with Lab(run_dir=run_dir, **HOSTILE_LAB) as lab:
        result = measure_hostile(lab, requests, seed)
    runs.save_table(run_dir, "hostile-requests", result.rows)
    figures = key_figures(result)
    return {**figures, "failures": failures(figures)}
