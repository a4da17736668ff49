"""End to end under open-loop load: each lab in turn alone under the open-loop generator on its deferred view, every
request matched with its email in the SMTP record: the response (due to answer) and the completion (due to the SMTP
server's 250), and what was lost or duplicated, message by message."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd

from helpers.instruments.endpoints import load_spec
from helpers.instruments.loadgen import run_load
from helpers.protocols.messages import first_accepted_at, new_tag, recipient, wait_for_copies
from helpers.stack import Lab


@dataclass
class E2EPlan:
    rate: float = 20.0  # deferred requests/s to one lab at a time (open loop, Poisson)
    duration_s: float = 5.0  # measured part
    warmup_s: float = 0.5  # sent first, left out of every figure
    timeout_s: float = 30.0  # a request's, and the wait for the emails its 202s promised


def measure(labs: dict[str, Lab], plan: E2EPlan) -> pd.DataFrame:
    """Each lab in turn alone under the open-loop generator on /email/deferred/ (Poisson arrivals at `plan.rate`,
    each request its own recipient); once the emails its 202s promised arrived (or `timeout_s`), every request is
    matched with its first copy in the SMTP record: completion_ms = accepted_at (when the server answered 250; equal
    to received_at here, the SMTP delay being 0) - the request's due time, NaN for an email that never came. One row
    per request, warm-ups flagged: the generator's records (latency_ms counts from the due time) with backend,
    completion_ms and copies (how many the SMTP server accepted)."""
    tag = new_tag("e2e")
    frames = []
    for k, (backend, lab) in enumerate(labs.items()):
        spec = replace(load_spec(lab, "deferred", mode="open", rate=plan.rate, arrival="poisson", connections=16,
                                 duration_s=plan.duration_s, warmup_s=plan.warmup_s, timeout_s=plan.timeout_s,
                                 processes=1, seed=k + 1),
                       form={"to": recipient(tag, backend)})
        result = run_load(spec)
        records = result.records
        prefix = f"{tag}-{backend}-"
        wait_for_copies(lab, prefix, int((records["status"] == 202).sum()), plan.timeout_s)
        due_epoch = result.start_epoch + records["due_ms"] / 1e3
        delivered_at = records["i"].map(first_accepted_at(lab, prefix))
        copies = records["i"].map(lab.mail.copies_by_number(prefix)).fillna(0).astype(int)
        frames.append(records.assign(backend=backend, completion_ms=(delivered_at - due_epoch) * 1e3, copies=copies))
    return pd.concat(frames, ignore_index=True)


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per backend, the measured requests (warm-ups left out): sent, accepted (202), delivered (an SMTP copy), lost
    (accepted, no copy) and duplicated (copies beyond each message's first), message by message; response p50/p99
    (due to answer, the 202s) and completion p50/p99 (due to the SMTP server's 250), ms."""
    measured = frame[~frame["warmup"]]
    rows = []
    for backend, own in measured.groupby("backend", sort=False):
        ok = own[own["status"] == 202]
        rows.append({"backend": backend, "sent": len(own), "accepted": len(ok),
                     "delivered": int(ok["completion_ms"].notna().sum()), "lost": int((ok["copies"] == 0).sum()),
                     "duplicated": int((own["copies"] - 1).clip(lower=0).sum()),
                     "response_p50_ms": ok["latency_ms"].median(), "response_p99_ms": ok["latency_ms"].quantile(0.99),
                     "completion_p50_ms": ok["completion_ms"].median(),
                     "completion_p99_ms": ok["completion_ms"].quantile(0.99)})
    return pd.DataFrame(rows).set_index("backend")
