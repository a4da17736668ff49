"""Plain requests to a running site, one fresh connection each, its body read: for checks, never for timing
(helpers.instruments.client times requests from a process of its own)."""

from __future__ import annotations

import http.client
from urllib.parse import urlencode, urlsplit


class SiteClient:
    """The site at `base_url` (http://host:port), as a test or a notebook cell asks it one thing at a time."""

    def __init__(self, base_url: str):
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError(f"base_url must be http://host:port, not {base_url!r}")
        self.base_url = f"http://{parts.hostname}:{parts.port}"
        self.host, self.port = parts.hostname, parts.port

    def url(self, path: str) -> str:
        return self.base_url + path

    def request(self, method: str, path: str, body: str | bytes | None = None, headers: dict | None = None,
                timeout: float = 30) -> http.client.HTTPResponse:
        """One request; the response's body is read into `.body`."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            response.body = response.read()
        finally:
            conn.close()
        return response

    def get(self, path: str) -> http.client.HTTPResponse:
        return self.request("GET", path)

    def post(self, path: str, form: dict[str, str]) -> http.client.HTTPResponse:
        """A form post, as a browser sends one (a slow blocking view gets a minute)."""
        return self.request("POST", path, body=urlencode(form), timeout=60,
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
