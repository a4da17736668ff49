"""Counting per message: every request of an episode has its own recipient `<tag>-<endpoint>-<i>@example.test`,
so the SMTP server's record says, message by message, what became of each (never in totals, where one loss and one
duplicate cancel out).

account() counts, from the client's records and the SMTP record:
- requested: requests the site answered 202 (a request the client saw fail was never promised);
- delivered: requested recipients the SMTP server accepted at least once; lost: requested - delivered;
- duplicated: accepted copies beyond the first, per recipient, for every request sent (one the client saw fail can
  be delivered twice all the same);
- late_copies: copies accepted after the lab looked settled (whatever settling waited for missed them);
- delivered_unacknowledged: delivered although the client got no 202 (work a client would wrongly retry);
- with a ledger, ledger_missed (answered 202 yet not `delivered` in the ledger) and ledger_disagreements (messages
  whose ledger state and SMTP record disagree on whether they were delivered), and stuck (answered 202, its job still
  pending or sending: never closed).

With `permanent`, the request numbers whose recipient the provider refuses for good (no such user): those are not
lost when undelivered, they are `permanent`; a ledger must end each as `failed` (permanent_failed, per message).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable

import pandas as pd

from helpers.stack import Lab

_episodes = iter(range(1, 10**9))


def new_tag(kind: str) -> str:
    """A prefix no other episode of this or an earlier run shares: every recipient of the episode starts with it."""
    return f"{kind}{next(_episodes)}t{int(time.time()) % 100000}"


def recipient(tag: str, endpoint: str, i: int | str = "{i}") -> str:
    """Request i's recipient; the default "{i}" is the load generator's placeholder, "%" matches all (SQL LIKE)."""
    return f"{tag}-{endpoint}-{i}@example.test"


def received_by_request(lab: Lab, tag: str, endpoint: str) -> pd.Series:
    """Copies the SMTP server accepted per request number i of this episode and endpoint."""
    return lab.mail.copies_by_number(f"{tag}-{endpoint}-")


def first_accepted_at(lab: Lab, prefix: str) -> pd.Series:
    """Per request number n of the recipients `<prefix><n>@example.test`: when the SMTP server accepted its first
    copy (epoch s, the 250)."""
    found = lab.mail.deliveries()
    numbers = found["rcpt_tos"].map(lambda r: r[0] if r else "").str.extract(rf"^{re.escape(prefix)}(\d+)@")[0]
    return found.assign(i=numbers).dropna(subset=["i"]).astype({"i": int}).groupby("i")["accepted_at"].min()


def wait_for_copies(lab: Lab, prefix: str, expected: int, timeout_s: float) -> int:
    """Copies the SMTP server accepted for recipients `<prefix><n>@...`, waiting up to `timeout_s` for `expected`."""
    deadline = time.monotonic() + timeout_s
    while True:
        arrived = int(lab.mail.copies_by_number(prefix).sum())
        if arrived >= expected or time.monotonic() > deadline:
            return arrived
        time.sleep(0.1)


def per_message(accepted: Iterable[int], received: pd.Series, permanent: Iterable[int] = ()) -> dict:
    """requested / delivered / lost / duplicated, message by message, from the request numbers the site accepted
    and the copies the SMTP server accepted per request number (any request's: one the client saw fail can be
    delivered twice all the same). A request in `permanent` (its recipient refused for good) is not lost when
    undelivered."""
    copies = received.reindex(sorted(set(accepted)), fill_value=0)
    deliverable = copies.drop(index=list(set(permanent) & set(copies.index)))
    return {"requested": len(copies), "delivered": int((copies > 0).sum()), "lost": int((deliverable == 0).sum()),
            "duplicated": int((received - 1).clip(lower=0).sum())}


def each_delivered_once(f: dict, lost: str, duplicated: str, received: str, requested: str) -> bool:
    """Figures `f` say nothing was lost and nothing duplicated, message by message (its `lost` and `duplicated`
    counts); figures recorded without those counts (the committed reference, until it is run again) can only be
    judged by their totals (`received` == `requested`)."""
    if lost in f:
        return f[lost] == 0 and f[duplicated] == 0
    return f[received] == f[requested]


def account(records: pd.DataFrame, received: pd.Series, received_at_settle: pd.Series,
            ledger: pd.Series | None = None, permanent: set[int] | frozenset = frozenset()) -> dict:
    """requested / delivered / lost / duplicated ... (see the module's docstring) from the load generator's
    `records`, the copies per request number read late (`received`) and when the lab settled
    (`received_at_settle`), `ledger`, each request number's job state in a ledger (None: no ledger), and the
    request numbers the provider refuses for good (`permanent`)."""
    accepted = sorted(set(records.loc[records["status"] == 202, "i"].astype(int)))
    refused_for_good = [i for i in accepted if i in permanent]
    deliverable = [i for i in accepted if i not in permanent]
    late = received - received_at_settle.reindex(received.index, fill_value=0)
    counts = {
        "sent": len(records),
        **per_message(accepted, received, permanent),
        "permanent": len(refused_for_good),
        "late_copies": int(late.clip(lower=0).sum()),
        "refused_503": int((records["status"] == 503).sum()),
        "server_5xx": int(((records["status"] >= 500) & (records["status"] != 503)).sum()),
        "client_errors": int(records["error"].notna().sum()),
        "delivered_unacknowledged": len(set(received.index[received > 0]) - set(accepted)),
    }
    if ledger is not None:
        messages = sorted(set(records["i"].astype(int)) | set(received.index))
        in_ledger = ledger.reindex(messages, fill_value="none").eq("delivered")
        counts["ledger_missed"] = int((~in_ledger.reindex(deliverable)).sum())
        counts["ledger_disagreements"] = int((in_ledger != received.reindex(messages, fill_value=0).gt(0)).sum())
        states = ledger.reindex(accepted, fill_value="none")
        counts["permanent_failed"] = int(states.reindex(refused_for_good).eq("failed").sum())
        counts["stuck"] = int(states.isin(["pending", "sending"]).sum())
    return counts
