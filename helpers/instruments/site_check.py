"""Checks a site before any load is sent to it: where it is (loopback unless the caller says otherwise), that it
answers HTTP, and that each endpoint answers 2xx itself, so that a load measures the endpoint and not an error page,
a redirect or a dead port. Each problem is a SiteProblem: one line that says what is wrong and what to do."""

from __future__ import annotations

import http.client
import ipaddress
import socket
from urllib.parse import urlencode, urljoin, urlsplit

from helpers.instruments.site_client import SiteClient

MAX_REDIRECTS = 5


class SiteProblem(Exception):
    """A site the instruments will not measure, and why, in one line."""

    def _render_traceback_(self) -> list[str]:
        """What IPython (a notebook) shows for it: the line, not a traceback."""
        return [f"{type(self).__name__}: {self}"]


class RemoteHostRefused(SiteProblem):
    """The site is not on this machine and the caller did not allow a remote host."""


class Unreachable(SiteProblem):
    """Nothing answers at the address: refused, timed out, or a name that does not resolve."""


class NotHTTP(SiteProblem):
    """Something answers, but not HTTP."""


class RedirectLoop(SiteProblem):
    """The endpoint's redirects come back to where they started, or go on past MAX_REDIRECTS."""


class Redirected(SiteProblem):
    """The endpoint answers with a redirect: a load would time the redirect, not the page."""


class ErrorAnswer(SiteProblem):
    """The endpoint answers 4xx or 5xx."""


def site_client(base_url: str, allow_remote_host: bool = False) -> SiteClient:
    """The site at `base_url` (http://host:port). Every address its host resolves to must be loopback unless
    `allow_remote_host`: a load test sent to someone else's server by a typo is an attack on it."""
    try:
        client = SiteClient(base_url)
    except ValueError as exc:
        raise SiteProblem(f"{exc} (https: point the lab at the application server behind your TLS proxy)") from None
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(client.host, client.port, type=socket.SOCK_STREAM)}
    except socket.gaierror as exc:
        raise Unreachable(f"{client.host} does not resolve ({exc.strerror})") from None
    remote = sorted(a for a in addresses if not ipaddress.ip_address(a.split("%")[0]).is_loopback)
    if remote and not allow_remote_host:
        raise RemoteHostRefused(f"{client.host} is not this machine ({', '.join(remote)}): the lab loads loopback "
                                "sites only, unless you set allow_remote_host=True for a server you run")
    return client


def describe(method: str, path: str) -> str:
    return f"{method} {path}"


def check_endpoint(client: SiteClient, method: str, path: str, form: dict[str, str] | None = None,
                   body: str | None = None, content_type: str = "application/json",
                   timeout_s: float = 10.0) -> http.client.HTTPResponse:
    """One request to the endpoint, as the load will send it (request number 0); its 2xx response, else the
    SiteProblem that says why not. A redirect is followed (without a body, on this site only) to tell a loop from a
    page that has moved."""
    if body is not None:
        data, headers = body.replace("{i}", "0"), {"Content-Type": content_type}
    elif form:
        data = urlencode({k: v.format(i=0) for k, v in form.items()})
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
    else:
        data, headers = None, {}
    where = f"{client.host}:{client.port}"
    try:
        response = client.request(method, path, body=data, headers=headers, timeout=timeout_s)
    except ConnectionRefusedError:
        raise Unreachable(f"nothing listens at {where} (connection refused): is the site running?") from None
    except TimeoutError:
        raise Unreachable(f"{describe(method, path)} at {where}: no answer within {timeout_s:g} s") from None
    except (http.client.HTTPException, ConnectionError) as exc:
        raise NotHTTP(f"{where} does not answer HTTP ({type(exc).__name__}: {str(exc)[:80] or 'no answer'})") \
            from None
    except OSError as exc:
        raise Unreachable(f"{where}: {exc.strerror or exc}") from None
    if 300 <= response.status < 400:
        chain = redirect_chain(client, method, path, response, timeout_s)
        if chain[-1] in chain[:-1] or len(chain) > MAX_REDIRECTS + 1:
            shown = " -> ".join(chain[:MAX_REDIRECTS + 2])
            raise RedirectLoop(f"{describe(method, path)} redirects in a loop: {shown}")
        raise Redirected(f"{describe(method, path)} answers {response.status} (to {chain[1]}): a load would time the "
                         f"redirect; probe {chain[-1]} instead")
    if response.status >= 400:
        text = " ".join(response.body.decode(errors="replace").split())[:120]
        raise ErrorAnswer(f"{describe(method, path)} answers {response.status} {response.reason}"
                          f"{': ' + text if text else ''}")
    return response


def redirect_chain(client: SiteClient, method: str, path: str, response, timeout_s: float) -> list[str]:
    """The paths a redirect leads through, from `path`: it stops at an answer that is not a redirect, at another
    site (its URL), at the first path seen twice, or after MAX_REDIRECTS + 1 hops."""
    chain = [path]
    while 300 <= response.status < 400 and len(chain) <= MAX_REDIRECTS + 1:
        target = urlsplit(urljoin(client.url(chain[-1]), response.getheader("Location") or ""))
        if (target.hostname, target.port) != (client.host, client.port):
            chain.append(target.geturl())
            break
        chain.append(target.path + (f"?{target.query}" if target.query else ""))
        if chain[-1] in chain[:-1]:
            break
        method = method if response.status in (307, 308) else "GET"
        try:
            response = client.request(method, chain[-1], timeout=timeout_s)
        except (OSError, http.client.HTTPException):
            break
    return chain
