"""The site's endpoints as the instruments drive them: path, method and form (values may hold "{i}", the
request's number, so every request has its own recipient)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from helpers.instruments.client import RequestSpec
from helpers.instruments.loadgen import LoadSpec
from helpers.stack.processes import LOOPBACK

if TYPE_CHECKING:
    from helpers.stack.lab import Lab

ENDPOINTS = {
    "noop": ("/noop/", "GET", {}),
    "deferred": ("/email/deferred/", "POST", {"to": "load{i}@example.test"}),
    # The deferred view's form parsed and validated, nothing enqueued: the baseline of the enqueue's cost.
    "validate": ("/email/validate/", "POST", {"to": "load{i}@example.test"}),
    "blocking": ("/email/blocking/", "POST", {"to": "load{i}@example.test"}),
    # The deferred email with the queue's own retries, and with its documented production settings (notebook 05).
    "retries": ("/email/deferred/retries/", "POST", {"to": "load{i}@example.test"}),
    "production": ("/email/deferred/production/", "POST", {"to": "load{i}@example.test"}),
    # The deferred email with the job ledger (labsite/ledger.py): notebook 05, `bench faults`.
    "ledger": ("/email/ledger/", "POST", {"to": "load{i}@example.test"}),
}


def load_spec(lab: Lab, endpoint: str, form: dict[str, str] | None = None, **kwargs) -> LoadSpec:
    """An open- or closed-loop load on one endpoint of the running lab (LoadSpec's knobs as keywords)."""
    path, method, default_form = ENDPOINTS[endpoint]
    return LoadSpec(LOOPBACK, lab.web_port, path=path, method=method, form=form or default_form, **kwargs)


def request_spec(endpoint: str, count: int, label: str | None = None, form: dict[str, str] | None = None,
                 **kwargs) -> RequestSpec:
    """Sequential timed requests to one endpoint (helpers.instruments.client)."""
    path, method, default_form = ENDPOINTS[endpoint]
    return RequestSpec(label or endpoint, path, count, method, form or default_form, **kwargs)
