"""A sequential timing client that runs in its own process, never in the notebook kernel or the server.

Each request opens a fresh connection (gunicorn's sync workers close it anyway), sends pre-encoded bytes
and records: connect time, time to first byte (from before connect to the first response byte, as a
browser's TTFB on a new connection) and total time, plus status and the server's own Server-Timing.
Requests of different kinds are interleaved so that each kind meets the same machine conditions.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import mimetypes
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from helpers.instruments import plan_process

if TYPE_CHECKING:  # pandas only in the parent: the client's process starts without it
    import pandas as pd

COLUMNS = ["seq", "label", "i", "warmup", "started_at", "connect_ms", "ttfb_ms", "total_ms", "status",
           "server_ms", "server_timing", "location", "bytes", "error"]


@dataclass
class RequestSpec:
    label: str
    path: str
    count: int
    method: str = "GET"
    form: dict[str, str] = field(default_factory=dict)  # values may hold "{i}", the request's number
    warmup: int = 3
    files: dict[str, str] = field(default_factory=dict)  # field name -> file path: sent as multipart/form-data
    body: str | None = None  # sent as it is instead of a form (e.g. JSON; "{i}" becomes the number), with content_type
    content_type: str = "application/json"


def interleave(specs: list[RequestSpec]) -> list[tuple[RequestSpec, int, bool]]:
    """Spread each spec's requests evenly over the run (warm-ups first), so no kind gets a quieter moment. Each
    request of a spec has its own number i (the timed ones 0 to count-1, the warm-ups after them): a form's "{i}"
    gives each its own recipient, so its emails are counted message by message."""
    warmups = [(spec, spec.count + i, True) for i in range(max(s.warmup for s in specs)) for spec in specs
               if i < spec.warmup]
    timed = [(spec, i, False) for spec in specs for i in range(spec.count)]
    timed.sort(key=lambda item: ((item[1] + 0.5) / item[0].count, specs.index(item[0])))
    return warmups + timed


@functools.lru_cache(maxsize=8)
def file_bytes(path: str) -> bytes:
    return Path(path).read_bytes()


def multipart_body(form: dict[str, str], files: dict[str, str], boundary: str) -> bytes:
    """A multipart/form-data body, as a browser sends a file upload."""
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
             for name, value in form.items()]
    for name, path in files.items():
        content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{Path(path).name}"'
                     f"\r\nContent-Type: {content_type}\r\n\r\n".encode() + file_bytes(path) + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


def encode(spec: RequestSpec, i: int, host: str, port: int) -> bytes:
    form = {k: v.format(i=i) for k, v in spec.form.items()}
    boundary = f"tasks-lab-{i}-boundary"
    if spec.body is not None:
        body, content_type = spec.body.replace("{i}", str(i)).encode(), spec.content_type
    elif spec.files:
        body, content_type = multipart_body(form, spec.files, boundary), f"multipart/form-data; boundary={boundary}"
    else:
        body, content_type = (urlencode(form).encode() if form else b""), "application/x-www-form-urlencoded"
    head = [f"{spec.method} {spec.path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close",
            "User-Agent: tasks-lab-client"]
    if spec.method in ("POST", "PUT", "PATCH"):
        head += [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def server_timing_spans(header: str | None) -> dict[str, float]:
    """Every span of a Server-Timing header that has a duration: name -> ms (`mail;dur=301.2;desc="..."`)."""
    spans = {}
    for part in (header or "").split(","):
        name, *params = (piece.strip() for piece in part.split(";"))
        for param in params:
            key, _, value = param.partition("=")
            if name and key.strip().lower() == "dur":
                with contextlib.suppress(ValueError):
                    spans[name] = float(value.strip().strip('"'))
    return spans


def server_timing_ms(header: str | None) -> float | None:
    """The server's own time: the `app` span of labsite's ServerTimingMiddleware."""
    return server_timing_spans(header).get("app")


def timed_request(host: str, port: int, raw: bytes, timeout: float = 120.0) -> dict:
    started_at = time.time()
    t0 = time.perf_counter()
    row = {"started_at": started_at, "connect_ms": None, "ttfb_ms": None, "total_ms": None, "status": None,
           "server_ms": None, "server_timing": None, "location": None, "bytes": 0, "error": None}
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            t_connected = time.perf_counter()
            sock.sendall(raw)
            sock.recv(1, socket.MSG_PEEK)
            t_first = time.perf_counter()
            response = http.client.HTTPResponse(sock)
            response.begin()
            body = response.read()
            t_done = time.perf_counter()
        row.update(connect_ms=(t_connected - t0) * 1e3, ttfb_ms=(t_first - t0) * 1e3,
                   total_ms=(t_done - t0) * 1e3, status=response.status,
                   server_ms=server_timing_ms(response.getheader("Server-Timing")),
                   server_timing=response.getheader("Server-Timing"), location=response.getheader("Location"),
                   bytes=len(body))
    except (OSError, http.client.HTTPException) as exc:
        row["error"] = f"{type(exc).__name__}: {exc}"
    return row


def run_plan(plan: dict) -> list[dict]:
    host, port = plan["host"], plan["port"]
    specs = [RequestSpec(**s) for s in plan["specs"]]
    return [{"seq": seq, "label": spec.label, "i": i, "warmup": warmup,
             **timed_request(host, port, encode(spec, i, host, port))}
            for seq, (spec, i, warmup) in enumerate(interleave(specs))]


def time_requests(host: str, port: int, specs: list[RequestSpec], include_warmup: bool = False) -> pd.DataFrame:
    """Run the plan in a separate Python process and return one row per request."""
    frame = plan_process.run_plan("helpers.instruments.client",
                                  {"host": host, "port": port, "specs": [asdict(s) for s in specs]}, "timing client")
    frame = frame.reindex(columns=COLUMNS)
    frame["warmup"] = frame["warmup"].astype(bool)
    return frame if include_warmup else frame[~frame["warmup"]].reset_index(drop=True)


if __name__ == "__main__":
    plan_process.serve_plan(run_plan)
