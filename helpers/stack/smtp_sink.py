"""A real SMTP server on loopback (aiosmtpd) that answers like a slow provider and records every message.

Run as its own process: `python -m helpers.stack.smtp_sink --port P --delay 0.3 --record deliveries.jsonl`.
Each accepted message becomes one JSON line, written and flushed before the 250 reply, so the record
counts exactly what the server acknowledged. A client that hangs up before the reply (it crashed, it timed
out) cancels the message: aiosmtpd cancels the handler, so nothing is recorded and nothing was acknowledged.
With `--arrivals FILE`, every message whose data arrived is also written there at once (ARRIVAL_COLUMNS), before
any fault or delay acts on it: the sign that a client is mid-send, whatever becomes of the message.

Faults, switchable while it runs: `--control FILE` names a JSON file the server re-reads (when its mtime
changes) before every message: {"mode": "ok"}, {"mode": "refuse", "code": 451} (a 4xx or 5xx reply to the
message's DATA), {"mode": "drop"} (the connection is cut when the message arrives, with no reply) or
{"mode": "stall", "stall_s": S} (EHLO, MAIL, RCPT and DATA each wait S before their reply; the message is then
accepted), each optionally with "delay_s" replacing `--delay` (a provider that turns slow). A refused or dropped
message is not recorded; `set_fault` writes the file.

How the provider behaves, whatever the fault: `set_provider` writes a second file beside the control file
(`<control>.provider`), re-read the same way: {"record_first": true} records (and acknowledges to the status API)
each message as soon as its data has arrived, before the delay, so a client that hangs up during the delay, or dies
before it commits the 250, has still had its message taken (the case a provider check exists for);
{"unknown_users": REGEX} answers 550 (no such user, permanent) to every RCPT TO address the regex matches.

Like a real provider's message-events API, `--status-port P` serves `GET /messages?message_id=<id>` on loopback:
{"accepted": true} once a message with that Message-ID was accepted. The job ledger asks it before sending
again a job whose previous attempt ended in a crash (the one case where it cannot know whether the 250 came).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import threading
import time
from email.parser import BytesParser
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from aiosmtpd.controller import Controller

# subject: what a task may say about itself from outside (labsite/views/transactions.py: did it see its row?)
RECORD_COLUMNS = ["received_at", "accepted_at", "message_id", "mail_from", "rcpt_tos", "size", "subject"]
ARRIVAL_COLUMNS = ["received_at", "message_id", "rcpt_tos"]


FAULT_MODES = ("ok", "refuse", "drop", "stall")
NO_SUCH_USER = "550 5.1.1 No such user here"
REFUSALS = {421: "421 Service not available, closing channel", 451: "451 Requested action aborted: local error",
            452: "452 Insufficient system storage", 554: "554 Transaction failed",
            550: "550 Mailbox unavailable"}


def _write_atomically(path: Path, state: dict) -> None:
    """Write the JSON state so that a reader never sees a half-written file; private to its owner, as every file of
    a run folder is (helpers.stack.lab.Lab.secure_files), whichever process writes it."""
    scratch = path.with_name(path.name + ".tmp")
    with open(os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as file:
        file.write(json.dumps(state))
    scratch.replace(path)


def set_fault(control_path: Path, mode: str = "ok", code: int = 451, delay_s: float | None = None,
              stall_s: float | None = None) -> None:
    """Switch a running server's fault mode (atomically: it never reads a half-written file)."""
    if mode not in FAULT_MODES:
        raise ValueError(f"mode must be one of {FAULT_MODES}, not {mode!r}")
    if mode == "refuse" and code not in REFUSALS:
        raise ValueError(f"code must be one of {sorted(REFUSALS)}")
    if (mode == "stall") != (stall_s is not None):
        raise ValueError("stall_s goes with mode 'stall', and only with it")
    state = {"mode": mode, "code": code, "since": time.time()}
    if delay_s is not None:
        state["delay_s"] = delay_s
    if stall_s is not None:
        state["stall_s"] = stall_s
    _write_atomically(Path(control_path), state)


def provider_path(control_path: Path) -> Path:
    return Path(control_path).with_name(Path(control_path).name + ".provider")


def set_provider(control_path: Path, record_first: bool = False, unknown_users: str | None = None) -> None:
    """How the running server behaves whatever the fault (see the module's docstring); the defaults restore the
    server's own: record after the delay, every user exists."""
    if unknown_users is not None:
        re.compile(unknown_users)  # a bad pattern fails here, not in the server
    _write_atomically(provider_path(control_path), {"record_first": record_first, "unknown_users": unknown_users})


class FaultSwitch:
    """The control file, re-read only when it changed."""

    def __init__(self, path: Path | None):
        self.path = path
        self.mtime = None
        self.state = {"mode": "ok"}

    def current(self) -> dict:
        if self.path is None:
            return self.state
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            self.state, self.mtime = {"mode": "ok"}, None
            return self.state
        if mtime != self.mtime:
            with contextlib.suppress(OSError, ValueError):  # a bad file: keep the last good state
                self.state, self.mtime = json.loads(self.path.read_text()), mtime
        return self.state


class SlowRecordingHandler:
    def __init__(self, record_path: Path, delay_s: float, control_path: Path | None = None,
                 arrivals_path: Path | None = None):
        self.record = open(record_path, "a", buffering=1)  # noqa: SIM115 (open for the server's life)
        self.arrivals = open(arrivals_path, "a", buffering=1) if arrivals_path else None  # noqa: SIM115
        self.delay_s = delay_s
        self.faults = FaultSwitch(control_path)
        self.provider = FaultSwitch(provider_path(control_path) if control_path else None)
        self.refused = 0
        self.dropped = 0
        self.accepted_ids: set[str] = set()

    async def stall(self, fault: dict | None = None) -> None:
        """In "stall" mode, hold this command's reply for stall_s."""
        fault = fault or self.faults.current()
        if fault.get("mode") == "stall":
            await asyncio.sleep(float(fault.get("stall_s", 0)))

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        await self.stall()
        session.host_name = hostname
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        await self.stall()
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        await self.stall()
        unknown = self.provider.current().get("unknown_users")
        if unknown and re.search(unknown, address):
            self.refused += 1
            return NO_SUCH_USER
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    def write_arrival(self, envelope, received_at: float) -> None:
        if self.arrivals is not None:
            headers = BytesParser(policy=default_policy).parsebytes(envelope.content, headersonly=True)
            row = {"received_at": received_at, "message_id": str(headers.get("Message-ID", "")),
                   "rcpt_tos": list(envelope.rcpt_tos)}
            self.arrivals.write(json.dumps(row) + "\n")

    def write_record(self, envelope, received_at: float) -> None:
        headers = BytesParser(policy=default_policy).parsebytes(envelope.content, headersonly=True)
        row = {
            "received_at": received_at,
            "accepted_at": time.time(),
            "message_id": str(headers.get("Message-ID", "")),
            "subject": str(headers.get("Subject", "")),
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "size": len(envelope.content),
        }
        self.record.write(json.dumps(row) + "\n")
        self.accepted_ids.add(row["message_id"])

    async def handle_DATA(self, server, session, envelope):
        received_at = time.time()
        self.write_arrival(envelope, received_at)
        fault = self.faults.current()
        await self.stall(fault)
        if fault.get("mode") == "refuse":
            self.refused += 1
            return REFUSALS.get(int(fault.get("code", 451)), REFUSALS[451])
        if fault.get("mode") == "drop":
            self.dropped += 1
            server.transport.abort()  # no reply at all: the client sees the connection die
            return "421 dropped"  # never reaches the client
        record_first = bool(self.provider.current().get("record_first"))
        if record_first:  # taken now: what follows cannot undo it
            self.write_record(envelope, received_at)
        delay_s = float(fault.get("delay_s", self.delay_s))
        if delay_s:
            await asyncio.sleep(delay_s)
        if not record_first:
            self.write_record(envelope, received_at)
        return "250 Message accepted for delivery"


def serve_status(accepted_ids: set[str], port: int) -> ThreadingHTTPServer:
    """The provider's message-status API, in a thread: was a Message-ID accepted?"""

    class StatusHandler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            url = urlparse(self.path)
            if url.path != "/messages":
                self.send_error(404)
                return
            message_id = parse_qs(url.query).get("message_id", [""])[0]
            body = json.dumps({"message_id": message_id, "accepted": message_id in accepted_ids}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), StatusHandler)
    threading.Thread(target=server.serve_forever, name="status-api", daemon=True).start()
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.3, help="seconds before each 250 reply")
    parser.add_argument("--record", type=Path, required=True)
    parser.add_argument("--control", type=Path, default=None, help="JSON fault switch, re-read per message")
    parser.add_argument("--status-port", type=int, default=None, help="serve the message-status API here")
    parser.add_argument("--arrivals", type=Path, default=None, help="record each message as its data arrives")
    args = parser.parse_args(argv)

    # aiosmtpd's Controller notices a port it cannot bind only when its whole ready_timeout has passed: a port taken
    # by another process fails here at once instead ("Address already in use"), and the lab picks another.
    with socket.create_server(("127.0.0.1", args.port)):
        pass
    controller = Controller(
        SlowRecordingHandler(args.record, args.delay, args.control, args.arrivals), hostname="127.0.0.1",
        port=args.port, ready_timeout=10,
    )
    controller.start()
    if args.status_port:
        serve_status(controller.handler.accepted_ids, args.status_port)
    print(f"smtp sink listening on 127.0.0.1:{args.port}, delay {args.delay} s", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    controller.stop()


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    main()
