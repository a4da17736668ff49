"""Hostile requests through the real stack: raw HTTP bytes over a socket to the served site (gunicorn's own parser,
the real SMTP backend), never Django's test client. Each request is built from a seeded generator and knows what
it deserves: a documented 2xx (a valid request) or a 4xx (everything else). Some kinds are ambiguous by nature (a
body in a charset nobody declared, a chunked body) and may get either, never a 5xx.

Every request that could send an email names its own recipient, fuzz<i>@example.test (or, for an international
domain, fuzz<i>@bücher.example.test, sent as fuzz<i>@xn--bcher-kva.example.test), so the bench can check that a 2xx
created exactly one email and a refusal none.

Races (`race`): two requests to /email/ledger/ with the same new Idempotency-Key, their last bytes sent together so
both views run at once; for the same recipient both must answer with one job, for another one of them a 422.

    python -m helpers.instruments.hostile < plan.json     (see `send_all`; helpers.instruments.plan_process)
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
from urllib.parse import urlencode

from helpers.instruments import plan_process

EMAIL_ENDPOINTS = ["/email/blocking/", "/email/deferred/", "/email/ledger/", "/djtasks/email/", "/email/async/",
                   "/email/async/thread-sensitive/", "/email/async/thread-pool/"]
THUMBNAIL_ENDPOINTS = ["/thumbnails/blocking/", "/thumbnails/deferred/", "/djtasks/thumbnails/"]
PAGE_ENDPOINTS = ["/signup/blocking/", "/signup/deferred/"]  # CSRF-protected: a request without the token is a 403
GET_ENDPOINTS = ["/noop/", "/tasks/{uuid}/", "/jobs/{uuid}/", "/djtasks/{uuid}/", "/signup/", "/signup/done/"]
NEEDS_PARAMETERS = {"/signup/done/"}  # the result page says which task it shows: without that, a 400
METHODS = ["PUT", "DELETE", "PATCH", "TRACE", "OPTIONS", "PROPFIND", "G\x00ET", "get"]
HOSTILE_ADDRESSES = ["a@b.test\r\nBcc: victim@example.test", "<script>@x.test", "' OR 1=1 --", "", "@", "a@b",
                     "\u212a@example.test", "\u017fam@example.test", "\x00@example.test", "a" * 300 + "@x.test",
                     "..@..", "%0d%0aBcc:x@y.z",  # not user@[127.0.0.1]: a domain literal is a valid address
                     # the site sends no SMTPUTF8: a non-ASCII part before the @, a domain IDNA 2008 refuses
                     "ad\u00e4@example.test", "\uff21\uff22\uff23@\u4f8b\u3048.\u30c6\u30b9\u30c8",
                     "ada@\u2603.example"]
IDN_DOMAIN = "B\u00fccher.example.test"  # accepted, sent as xn--bcher-kva.example.test
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
ACCEPTS = ["application/json", "text/html", "*/*", "text/html,application/xhtml+xml;q=0.9", ""]
# kind -> what it deserves: "2xx", "4xx" or "any" (never a 5xx)
KINDS = {"valid": "2xx", "query_on_post": "2xx", "idn_address": "2xx", "wrong_method": "4xx", "bad_address": "4xx",
         "repeated_parameter": "4xx", "bad_charset": "any", "chunked": "any", "huge_header": "4xx",
         "malformed_header": "4xx",
         # a line that starts with a space continues the header before it (obs-fold): RFC 9112 lets a server refuse
         # it (gunicorn: 400) or read it as a space (h11, under uvicorn)
         "folded_header": "any", "random_body": "4xx", "near_valid_image": "4xx",
         # Django's multipart parser finds a well-formed part past a broken boundary: a 2xx is right when it did
         "broken_multipart": "any",
         "page_without_token": "4xx", "get_with_garbage_id": "4xx", "valid_get": "2xx"}  # GETs: see request()


def recipient(i: int, domain: str = "example.test") -> str:
    return f"fuzz{i}@{domain}"


def multipart(fields: dict[str, str], files: dict[str, tuple[str, str, bytes]], boundary: str) -> bytes:
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    for name, (filename, content_type, data) in files.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                     f"Content-Type: {content_type}\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


class Corpus:
    """The i-th hostile request, the same for the same seed and images whatever the batches."""

    def __init__(self, seed: int, images: dict[str, bytes]):
        self.seed = seed
        self.images = images  # "jpeg": a valid JPEG; "truncated", "bad_crc_png", "text": near-valid ones

    def form(self, i: int, endpoint: str) -> tuple[bytes, str]:
        """The valid body of `endpoint` for request i: (body, content type)."""
        if endpoint in THUMBNAIL_ENDPOINTS:
            boundary = f"fuzz{i}"
            return (multipart({}, {"image": ("photo.jpg", "image/jpeg", self.images["jpeg"])}, boundary),
                    f"multipart/form-data; boundary={boundary}")
        return urlencode({"to": recipient(i)}).encode(), "application/x-www-form-urlencoded"

    def request(self, i: int) -> dict:
        rng = random.Random(f"{self.seed}:{i}")
        kind = rng.choice(list(KINDS))
        endpoint = rng.choice(THUMBNAIL_ENDPOINTS if kind == "near_valid_image" else
                              PAGE_ENDPOINTS if kind == "page_without_token" else
                              EMAIL_ENDPOINTS if kind == "idn_address" else
                              GET_ENDPOINTS if kind in ("get_with_garbage_id", "valid_get") else
                              EMAIL_ENDPOINTS + THUMBNAIL_ENDPOINTS)
        method, query, headers = "POST", "", {"Accept": rng.choice(ACCEPTS)}
        body, content_type = self.form(i, endpoint)
        if kind == "query_on_post":
            query = "?" + urlencode({"to": "evil@example.test", "x": "\u00e9" * rng.randint(1, 50)})
        elif kind == "wrong_method":
            method = rng.choice(METHODS)
        elif kind == "idn_address":
            body = urlencode({"to": recipient(i, IDN_DOMAIN)}).encode()
        elif kind == "bad_address":
            body = urlencode({"to": rng.choice(HOSTILE_ADDRESSES)}).encode()
            content_type = "application/x-www-form-urlencoded"
        elif kind == "repeated_parameter":
            body = urlencode([("to", recipient(i)), ("to", recipient(i))]).encode()
            content_type = "application/x-www-form-urlencoded"
        elif kind == "bad_charset":
            content_type += "; charset=" + rng.choice(["utf-7", "x-nonsense", "utf-16", "latin-1\x00", ""])
        elif kind == "chunked":
            headers["Transfer-Encoding"] = "chunked"
        elif kind == "huge_header":
            headers["X-Padding"] = "a" * rng.choice([9000, 20000, 70000])
        elif kind == "malformed_header":
            headers[rng.choice(["No colon here", "Bad\x01Name"])] = None
        elif kind == "folded_header":
            headers[" folded-on-to-the-header-before"] = None
        elif kind == "random_body":
            body = rng.randbytes(rng.randint(0, 3000))
            content_type = rng.choice(["application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                                       "application/json", "image/png", "text/plain"])
        elif kind == "near_valid_image":
            name = rng.choice(["truncated", "bad_crc_png", "text"])
            declared = "image/png" if name == "bad_crc_png" else "image/jpeg"
            body = multipart({}, {"image": ("photo.jpg", declared, self.images[name])}, f"fuzz{i}")
            content_type = f"multipart/form-data; boundary=fuzz{i}"
        elif kind == "broken_multipart":
            body = body.replace(b"--fuzz", b"--fizz", 1) if endpoint in THUMBNAIL_ENDPOINTS else \
                b"--x\r\nContent-Disposition: form-data; name=\"to\"\r\n\r\n" + recipient(i).encode()
            content_type = f"multipart/form-data; boundary=fuzz{i}"
        expect = KINDS[kind]
        if kind in ("get_with_garbage_id", "valid_get"):
            method, body, content_type = "GET", b"", None
            garbage = rng.choice(["not-a-uuid", "..%2f..%2fetc%2fpasswd", "%00", "1" * 300, "%C3%A9"])
            if "{uuid}" in endpoint:  # garbage: 400; an id nobody created: 404
                endpoint = endpoint.replace("{uuid}", garbage if kind == "get_with_garbage_id" else UNKNOWN_ID)
                expect = "4xx"
            else:  # a page ignores what it does not read
                query = "?" + urlencode({"id": garbage}) if kind == "get_with_garbage_id" else ""
                expect = "4xx" if endpoint in NEEDS_PARAMETERS else "2xx"
        return {"i": i, "kind": kind, "expect": expect, "method": method, "path": endpoint + query,
                "endpoint": endpoint.split("?")[0], "headers": headers, "body": body, "content_type": content_type}


def encode(request: dict, host: str, port: int) -> bytes:
    head = [f"{request['method']} {request['path']} HTTP/1.1", f"Host: {host}:{port}", "Connection: close",
            "User-Agent: tasks-lab-hostile"]
    for name, value in request["headers"].items():
        head.append(name if value is None else f"{name}: {value}")
    body = request["body"]
    if request["content_type"] is not None:
        head.append(f"Content-Type: {request['content_type']}")
    if request["headers"].get("Transfer-Encoding") == "chunked":
        body = b"".join(f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in (body[:7], body[7:]) if c) + b"0\r\n\r\n"
    elif request["method"] != "GET" or body:
        head.append(f"Content-Length: {len(body)}")
    return "\r\n".join(head).encode("latin-1", "replace") + b"\r\n\r\n" + body


def status_of(host: str, port: int, raw: bytes, timeout_s: float) -> tuple[int | None, str | None]:
    """The response's status code, or the error that kept it from coming."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(raw)
            data = b""
            while b"\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError as exc:
        return None, f"{type(exc).__name__}: {exc}"
    parts = data.split(b" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        return None, f"no status line: {data[:60]!r}"
    return int(parts[1]), None


def race(host: str, port: int, key: str, recipients: list[str], timeout_s: float) -> list[dict]:
    """POST /email/ledger/ once per recipient, all with Idempotency-Key `key`, on connections of their own: every
    request but its last byte first, then the last bytes together. One row per request: status, job_id."""
    raws = [encode({"method": "POST", "path": "/email/ledger/", "body": urlencode({"to": to}).encode(),
                    "headers": {"Accept": "application/json", "Idempotency-Key": key},
                    "content_type": "application/x-www-form-urlencoded"}, host, port) for to in recipients]
    rows = [{"key": key, "to": to, "status": None, "job_id": None, "error": None} for to in recipients]
    socks = []
    try:
        for raw in raws:
            sock = socket.create_connection((host, port), timeout=timeout_s)
            socks.append(sock)
            sock.sendall(raw[:-1])
        for sock, raw in zip(socks, raws, strict=True):
            sock.sendall(raw[-1:])
        for sock, row in zip(socks, rows, strict=True):
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            row["status"] = int(head.split(b" ", 2)[1])
            with contextlib.suppress(ValueError):
                row["job_id"] = json.loads(body).get("job_id")
    except (OSError, IndexError, ValueError) as exc:
        for row in rows:
            row["error"] = row["error"] or f"{type(exc).__name__}: {exc}"
    finally:
        for sock in socks:
            sock.close()
    return rows


def send_races(plan: dict) -> list[dict]:
    """The child's side of `run_races`: race k is two requests with key race-<seed>-<k>, to race<k>a@example.test
    both (even k) or to race<k>a and race<k>b (odd k)."""
    rows = []
    for k in range(plan["races"]):
        recipients = [f"race{k}a@example.test", f"race{k}{'a' if k % 2 == 0 else 'b'}@example.test"]
        rows += [row | {"race": k} for row in race(plan["host"], plan["port"], f"race-{plan['seed']}-{k}",
                                                   recipients, plan["timeout_s"])]
    return rows


def send_all(plan: dict) -> list[dict]:
    """The child's side: build and send plan["count"] requests in turn (or the races); one row per request."""
    if plan.get("races"):
        return send_races(plan)
    images = {name: bytes.fromhex(data) for name, data in plan["images"].items()}
    corpus = Corpus(plan["seed"], images)
    rows = []
    for i in range(plan["first"], plan["first"] + plan["count"]):
        request = corpus.request(i)
        status, error = status_of(plan["host"], plan["port"], encode(request, plan["host"], plan["port"]),
                                  plan["timeout_s"])
        rows.append({k: request[k] for k in ("i", "kind", "expect", "method", "endpoint")} |
                    {"accept": request["headers"].get("Accept"), "status": status, "error": error})
    return rows


def run(host: str, port: int, count: int, images: dict[str, bytes], seed: int = 1, first: int = 0,
        timeout_s: float = 30.0):
    """Send `count` hostile requests from a process of their own; one row per request (a frame)."""
    plan = {"host": host, "port": port, "count": count, "seed": seed, "first": first, "timeout_s": timeout_s,
            "images": {name: data.hex() for name, data in images.items()}}
    return plan_process.run_plan("helpers.instruments.hostile", plan, "hostile client",
                                 timeout=count * timeout_s + 60)


def run_races(host: str, port: int, races: int, seed: int = 1, timeout_s: float = 30.0):
    """`races` Idempotency-Key races (send_races) from a process of their own; one row per request (a frame)."""
    plan = {"host": host, "port": port, "races": races, "seed": seed, "timeout_s": timeout_s}
    return plan_process.run_plan("helpers.instruments.hostile", plan, "race client", timeout=races * timeout_s + 60)


if __name__ == "__main__":
    plan_process.serve_plan(send_all)
