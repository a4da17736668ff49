"""What the lab's SMTP server accepted, read from its record: one JSON line per message, written before its 250
reply (helpers.stack.smtp_sink), so the record counts exactly what the server acknowledged; and, from its arrivals
record, every message whose data arrived, accepted or not."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from helpers.stack.processes import poll_until
from helpers.stack.smtp_sink import ARRIVAL_COLUMNS, RECORD_COLUMNS


class SmtpRecord:
    """The record at `path` (and the arrivals record at `arrivals_path`, if the server keeps one). `running` says
    whether the servers that fill it still run: a wait stops with an error when they died, instead of waiting out its
    timeout."""

    def __init__(self, path: Path, running: Callable[[], bool] = lambda: True, arrivals_path: Path | None = None):
        self.path = Path(path)
        self.arrivals_path = Path(arrivals_path) if arrivals_path else None
        self.running = running

    def emails_received(self) -> int:
        """Messages accepted so far (complete lines: a line being written is not counted yet)."""
        try:
            with open(self.path, "rb") as record:
                return sum(1 for line in record if line.endswith(b"\n"))
        except FileNotFoundError:
            return 0

    def deliveries(self) -> pd.DataFrame:
        """Every accepted message, one row each (RECORD_COLUMNS)."""
        return _read_lines(self.path, RECORD_COLUMNS)

    def arrivals(self) -> pd.DataFrame:
        """Every message whose data arrived, accepted or not, one row each (ARRIVAL_COLUMNS; received_at epoch s)."""
        if self.arrivals_path is None:
            raise ValueError("this SMTP server keeps no arrivals record (helpers.stack.smtp_sink --arrivals)")
        return _read_lines(self.arrivals_path, ARRIVAL_COLUMNS)

    def copies_by_number(self, prefix: str) -> pd.Series:
        """Copies accepted per request number n, for the recipients `<prefix><n>@example.test` or at an ASCII
        subdomain of it (experiments give each request its own numbered recipient)."""
        recipients = self.deliveries()["rcpt_tos"].map(lambda r: r[0] if r else "")
        pattern = rf"^{re.escape(prefix)}(\d+)@(?:[a-z0-9-]+\.)*example\.test$"
        return recipients.str.extract(pattern)[0].dropna().astype(int).value_counts()

    def wait_for_emails(self, expected: int, timeout: float = 120.0) -> float:
        """Block until `expected` messages were accepted; returns the seconds waited."""
        return poll_until(lambda: self.emails_received() >= expected, timeout,
                          lambda: f"{self.emails_received()} of {expected} emails arrived in {timeout} s",
                          self.running, "waiting for emails")


def _read_lines(path: Path, columns: list[str]) -> pd.DataFrame:
    """The complete JSON lines of a record (a line being written is left out)."""
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame(columns=columns)
    with open(path) as record:
        rows = [json.loads(line) for line in record if line.endswith("\n")]
    return pd.DataFrame(rows, columns=columns)
