"""Hostile input through the real stack (no notebook: `python -m helpers bench hostile_input`, and a quick slice in
tests/test_hostile_stack.py). tests/test_hostile_input.py fuzzes the views through Django's test client; this sends raw
bytes to gunicorn and to uvicorn (each its own HTTP parser; the async views included) with the real SMTP backend
behind the views, and checks what the test client cannot see: no 5xx, no 2xx for a request that deserved a refusal,
exactly one email or thumbnail per 2xx and none per refusal, nothing left in the upload spool, servers still healthy
after, and Idempotency-Key races on the ledger that end with one job per key. """

from __future__ import annotations

import io
import re
import time
import uuid
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
    races: pd.DataFrame | None = None  # one per racing request (hostile.send_races), with the race's jobs and emails


RACER = re.compile(r"^race(\d+)[ab]@example\.test$")


def race_outcomes(lab: Lab, rows: pd.DataFrame) -> pd.DataFrame:
    """The race rows, each with the jobs the ledger holds for its race's recipients and the emails they got."""
    jobs = pd.DataFrame(lab.ledger.database.query('select "to", id from labsite_emailjob where "to" like ?',
                                                  ("race%",)), columns=["to", "id"])
    jobs["race"] = jobs["to"].str.extract(RACER)[0]
    jobs = jobs.dropna(subset=["race"]).astype({"race": int})
    jobs["id"] = jobs["id"].map(lambda v: str(uuid.UUID(str(v))))
    deliveries = lab.mail.deliveries()
    sent = deliveries["rcpt_tos"].map(lambda r: r[0] if r else "").str.extract(RACER)[0].dropna().astype(int) \
        if len(deliveries) else pd.Series(dtype=int)
    by_race = jobs.groupby("race")["id"].agg(list)
    return rows.assign(jobs=rows["race"].map(lambda k: by_race.get(k, [])),
                       emails=rows["race"].map(sent.value_counts()).fillna(0).astype(int))


def measure_hostile(lab: Lab, count: int, seed: int = 1, batch: int = 2500, settle_timeout_s: float = 120.0,
                    first: int = 0, races: int = 0) -> HostileResult:
    """`count` hostile requests (numbered from `first`) in batches from a client process, then `races`
    Idempotency-Key races, then wait until every queued email and thumbnail is done and the SMTP record is quiet."""
    images = near_valid_images()
    frames = [hostile.run("127.0.0.1", lab.web_port, min(batch, first + count - start), images, seed, start)
              for start in range(first, first + count, batch)]
    rows = pd.concat(frames, ignore_index=True)
    race_rows = hostile.run_races("127.0.0.1", lab.web_port, races, seed) if races else None
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
                         len(list(spool.glob("*"))) if spool.exists() else 0, alive, time.monotonic() - started,
                         race_outcomes(lab, race_rows) if races else None)


def race_figures(races: pd.DataFrame | None) -> dict:
    """Per race: the answers and what the ledger holds. A race holds when its key has exactly one job and one
    email, no answer is a 5xx (or missing), every 2xx names that job, and the answer to a second recipient is a 4xx
    (422, or 409)."""
    if races is None or races.empty:
        return {"races": 0, "held": 0, "status_5xx": 0, "failed": []}
    failed = []
    for k, race in races.groupby("race"):
        ok = race[race["status"].between(200, 299)]
        jobs = race["jobs"].iloc[0]
        other = race["to"].nunique() > 1
        holds = (len(jobs) == 1 and race["emails"].iloc[0] == 1 and race["status"].notna().all()
                 and not (race["status"] >= 500).any() and set(ok["job_id"]) <= set(jobs)
                 and (len(ok) == 1 and race["status"].isin([202, 409, 422]).all() if other else len(ok) == 2))
        if not holds:
            failed.append({"race": int(k), "statuses": [None if pd.isna(v) else int(v) for v in race["status"]],
                           "jobs": len(jobs), "emails": int(race["emails"].iloc[0])})
    statuses = races["status"].value_counts(dropna=False)
    return {"races": int(races["race"].nunique()), "held": int(races["race"].nunique()) - len(failed),
            "status_5xx": int((races["status"] >= 500).sum()),
            "statuses": {str(k): int(v) for k, v in statuses.items()}, "failed": failed}


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
        "idempotency_races": race_figures(result.races),
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
    if figures["idempotency_races"]["failed"]:
        wrong["idempotency_races"] = figures["idempotency_races"]["failed"]
    return wrong


def combined(by_server: dict[str, dict]) -> dict:
    """One account over every server's: the counts summed, the servers alive only if each was, the races pooled."""
    first = next(iter(by_server.values()))
    counts = [name for name, value in first.items() if isinstance(value, int) and not isinstance(value, bool)]
    races = [f["idempotency_races"] for f in by_server.values()]
    return {**{name: sum(f[name] for f in by_server.values()) for name in counts},
            "servers_alive": all(f["servers_alive"] for f in by_server.values()),
            "idempotency_races": {"races": sum(r["races"] for r in races), "held": sum(r["held"] for r in races),
                                  "status_5xx": sum(r["status_5xx"] for r in races),
                                  "failed": [failure for r in races for failure in r["failed"]]}}


HOSTILE_LAB = dict(smtp_delay_s=0.0, web_workers=4, consumer_workers=4, huey_log_level="WARNING",
                   consumer_initial_delay_s=0.01, consumer_max_delay_s=0.1)


SERVERS = ("gunicorn", "uvicorn")


@benchmark("hostile_input", aliases=("hostile",))
def hostile_bench(run_dir, requests: int = 10_000, races: int = 100, seed: int = 1) -> dict:
    """`requests` hostile requests and `races` Idempotency-Key races, half under gunicorn and half under uvicorn,
    each server in a lab of its own with the real SMTP backend."""
    by_server, frames = {}, []
    for n, server in enumerate(SERVERS):
        share, first = requests // len(SERVERS), n * (requests // len(SERVERS))
        with Lab(run_dir=run_dir / server, web_server=server, **HOSTILE_LAB) as lab:
            result = measure_hostile(lab, share, seed, first=first, races=races // len(SERVERS))
        frames.append(result.rows.assign(server=server))
        by_server[server] = key_figures(result)
    runs.save_table(run_dir, "hostile-requests", pd.concat(frames, ignore_index=True))
    figures = combined(by_server)
    wrong = {server: failures(f) for server, f in by_server.items() if failures(f)}
    return {**figures, "by_server": by_server, "failures": wrong,
            "claims_failed": [f"{server}: {name} {value}" for server, f in wrong.items() for name, value in f.items()]}
