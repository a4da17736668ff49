"""A real SMTP server on loopback (aiosmtpd) that answers like a slow provider and records every message.

Run as its own process: `python -m helpers.smtp_sink --port P --delay 0.3 --record deliveries.jsonl`.
Each accepted message becomes one JSON line, written and flushed before the 250 reply, so the record
counts exactly what the server acknowledged.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path

import pandas as pd
from aiosmtpd.controller import Controller

RECORD_COLUMNS = ["received_at", "accepted_at", "message_id", "mail_from", "rcpt_tos", "size"]


class SlowRecordingHandler:
    def __init__(self, record_path: Path, delay_s: float):
        self.record = open(record_path, "a", buffering=1)  # noqa: SIM115 (open for the server's life)
        self.delay_s = delay_s

    async def handle_DATA(self, server, session, envelope):
        received_at = time.time()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        headers = BytesParser(policy=default_policy).parsebytes(envelope.content, headersonly=True)
        row = {
            "received_at": received_at,
            "accepted_at": time.time(),
            "message_id": str(headers.get("Message-ID", "")),
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "size": len(envelope.content),
        }
        self.record.write(json.dumps(row) + "\n")
        return "250 Message accepted for delivery"


def read_deliveries(record_path: Path) -> pd.DataFrame:
    """Every message the server accepted, one row each."""
    path = Path(record_path)
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame(columns=RECORD_COLUMNS)
    with open(path) as record:
        rows = [json.loads(line) for line in record if line.endswith("\n")]
    return pd.DataFrame(rows, columns=RECORD_COLUMNS)


def count_deliveries(record_path: Path) -> int:
    try:
        with open(record_path, "rb") as record:
            return sum(1 for line in record if line.endswith(b"\n"))
    except FileNotFoundError:
        return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.3, help="seconds before each 250 reply")
    parser.add_argument("--record", type=Path, required=True)
    args = parser.parse_args(argv)

    controller = Controller(
        SlowRecordingHandler(args.record, args.delay), hostname="127.0.0.1", port=args.port, ready_timeout=10
    )
    controller.start()
    print(f"smtp sink listening on 127.0.0.1:{args.port}, delay {args.delay} s", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    controller.stop()


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    main()
