"""Notebook 01, blocking vs deferred: what one request costs (`python -m helpers bench blocking_vs_deferred`)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from helpers import runs
from helpers.analysis import latency
from helpers.instruments.client import RequestSpec, time_requests
from helpers.protocols.messages import each_delivered_once, new_tag, per_message, recipient
from helpers.runs.bench import benchmark
from helpers.stack import Lab
from helpers.stack.processes import LOOPBACK

EMAIL_LABELS = ("blocking", "deferred")


@dataclass
class OverheadResult:
    timings: pd.DataFrame  # every request, warm-ups flagged
    summary: pd.DataFrame  # per endpoint, warm-ups left out
    emails_requested: int
    emails_received: int
    delivery_wait_s: float
    emails_lost: int  # requested emails the SMTP server never accepted, message by message
    emails_duplicated: int  # copies accepted beyond each message's first

    def p50(self, label: str) -> float:
        return float(self.summary.loc[label, "p50_ms"])


def overhead_specs(fast_requests: int, blocking_requests: int, warmup: int = 5, tag: str = "overhead"
                   ) -> list[RequestSpec]:
    """Every email request to its own recipient (helpers.protocols.messages.recipient)."""
    return [
        RequestSpec("noop", "/noop/", fast_requests, warmup=warmup),
        RequestSpec("deferred", "/email/deferred/", fast_requests, "POST", {"to": recipient(tag, "deferred")},
                    warmup=warmup),
        RequestSpec("blocking", "/email/blocking/", blocking_requests, "POST", {"to": recipient(tag, "blocking")},
                    warmup=min(warmup, 2)),
    ]


def emails_per_message(lab: Lab, timings: pd.DataFrame, tag: str) -> dict:
    """Lost and duplicated emails of the email requests answered 2xx, message by message, summed over the email
    endpoints (so one loss and one duplicate never cancel out)."""
    counts = [per_message(timings.loc[(timings["label"] == label) & timings["status"].between(200, 299), "i"],
                          lab.mail.copies_by_number(f"{tag}-{label}-"))
              for label in EMAIL_LABELS]
    return {key: sum(c[key] for c in counts) for key in ("lost", "duplicated")}


def measure_overhead(lab: Lab, fast_requests: int, blocking_requests: int,
                     delivery_timeout_s: float = 300.0) -> OverheadResult:
    """Time the no-op, deferred and blocking endpoints interleaved, then wait for every email to arrive.

    Every email request that was answered 2xx (warm-ups included) must reach the SMTP server, once."""
    before, tag = lab.mail.emails_received(), new_tag("overhead")
    timings = time_requests(LOOPBACK, lab.web_port, overhead_specs(fast_requests, blocking_requests, tag=tag),
                            include_warmup=True)
    answered = timings["label"].isin(EMAIL_LABELS) & timings["status"].between(200, 299)
    requested = int(answered.sum())
    waited = lab.mail.wait_for_emails(before + requested, timeout=delivery_timeout_s)
    summary = latency.summarize(timings[~timings["warmup"]])
    counted = emails_per_message(lab, timings, tag)
    return OverheadResult(timings, summary, requested, lab.mail.emails_received() - before, waited,
                          counted["lost"], counted["duplicated"])


def key_figures(result: OverheadResult) -> dict:
    """The figures notebook 01 records and `bench blocking_vs_deferred` prints."""
    noop, deferred, blocking = (result.p50(k) for k in ("noop", "deferred", "blocking"))
    return {
        "noop_p50_ms": round(noop, 3),
        "deferred_p50_ms": round(deferred, 3),
        "blocking_p50_ms": round(blocking, 3),
        "ratio_deferred_noop_p50": round(deferred / noop, 3),
        "speedup_blocking_deferred_p50": round(blocking / deferred, 1),
        "failed_requests": int((~result.timings["status"].between(200, 299)).sum()),  # warm-ups included
        "emails_requested": result.emails_requested,
        "emails_received": result.emails_received,
        "emails_lost": result.emails_lost,
        "emails_duplicated": result.emails_duplicated,
        "samples": {k: int(result.summary.loc[k, "n"]) for k in result.summary.index},
        "delivery_wait_s": round(result.delivery_wait_s, 2),
    }


@benchmark("blocking_vs_deferred", aliases=("overhead",))
def overhead(run_dir, fast_requests: int = 1000, blocking_requests: int = 60, smtp_delay_s: float = 0.3,
             web_workers: int = 4) -> dict:
    """The cost of one enqueue over a no-op request, and what deferring buys against sending inline. Returns
    key_figures() and nothing else, so the bench and notebook 01 print the same names; the lab's whole
    configuration is in run.json (lab_config)."""
    with Lab(run_dir=run_dir, smtp_delay_s=smtp_delay_s, web_workers=web_workers) as lab:
        result = measure_overhead(lab, fast_requests, blocking_requests)
    runs.save_table(run_dir, "requests", result.timings)
    return key_figures(result)


CLAIMS = {
    "answered": "every request answered 2xx",
    "delivered": "every email asked for reached the SMTP server",  # once each, counted message by message
    "blocking_waits": "blocking p50 at least the SMTP delay",
    "deferred_10x": "deferred p50 at least 10x below blocking p50",
    "deferred_near_noop": "deferred p50 within a tenth of the SMTP delay of the no-op p50",
}


def verdict(figures: dict, quick: bool = False) -> dict[str, bool | None]:
    """Notebook 01's claims, from key_figures() and the SMTP delay it ran with (smtp_delay_ms)."""
    f, smtp_ms = figures, figures["smtp_delay_ms"]
    return runs.claims(CLAIMS, {
        "answered": f["failed_requests"] == 0,
        "delivered": each_delivered_once(f, "emails_lost", "emails_duplicated", "emails_received",
                                         "emails_requested"),
        "blocking_waits": f["blocking_p50_ms"] >= smtp_ms,
        "deferred_10x": f["blocking_p50_ms"] >= 10 * f["deferred_p50_ms"],
        "deferred_near_noop": f["deferred_p50_ms"] - f["noop_p50_ms"] < smtp_ms / 10,
    }, quick)
