"""Outbound webhook HTTP with an SSRF guard.

The target's host is resolved once, every address is checked, and the connection is made to the checked
address (so a DNS answer that changes between the check and the connect cannot point us inside). Redirects
are not followed. No Django imports."""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

USER_AGENT = "ModelCommons-Webhooks/1.0"
MAX_URL_LENGTH = 1000


class UnsafeTarget(ValueError):
    """The URL may not be used as a webhook target."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str
    address: str


def _address_refusal(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_private: bool) -> str | None:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    # Link-local (cloud metadata at 169.254.169.254), multicast and unspecified are never targets.
    if ip.is_link_local or ip.is_multicast or ip.is_unspecified:
        return f"{ip} is a link-local, multicast or unspecified address"
    if ip.is_global:
        return None
    if allow_private and (ip.is_loopback or ip.is_private):
        return None
    return f"{ip} is a loopback, private or reserved address"


def resolve_target(url: str, *, allow_private: bool) -> Target:
    """Parse, resolve and check a webhook URL. Raises UnsafeTarget with a reason a user can act on."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeTarget(f"The URL is longer than {MAX_URL_LENGTH} characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeTarget(f"Not a valid URL: {exc}.") from exc
    if parts.scheme not in ("http", "https"):
        raise UnsafeTarget("Only http and https URLs are allowed.")
    if not parts.hostname:
        raise UnsafeTarget("The URL has no host.")
    if parts.username is not None or parts.password is not None:
        raise UnsafeTarget("Credentials in the URL are not allowed; authenticate with the signature.")
    port = port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeTarget(f"The host '{host}' does not resolve.") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise UnsafeTarget(f"The host '{host}' does not resolve.")
    for address in addresses:
        reason = _address_refusal(ipaddress.ip_address(address.split("%", 1)[0]), allow_private)
        if reason:
            raise UnsafeTarget(f"Refused: '{host}' resolves to {reason}.")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(scheme=parts.scheme, host=host, port=port, path=path, address=addresses[0])


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, target: Target, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout, context=ssl.create_default_context())
        self._address = target.address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class PostOutcome:
    status_code: int | None
    excerpt: str
    error: str

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def post_json(url: str, body: bytes, headers: dict[str, str], *, timeout: float,
              allow_private: bool) -> PostOutcome:
    """POST a JSON body. Network errors and refusals come back as an outcome, never as an exception."""
    try:
        target = resolve_target(url, allow_private=allow_private)
    except UnsafeTarget as exc:
        return PostOutcome(None, "", str(exc))
    conn_cls = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    conn = conn_cls(target, timeout)
    try:
        conn.request("POST", target.path, body=body, headers={
            **headers, "Content-Type": "application/json", "User-Agent": USER_AGENT,
        })
        response = conn.getresponse()
        excerpt = response.read(2048).decode("utf-8", "replace")
        return PostOutcome(response.status, excerpt, "" if 200 <= response.status < 300 else
                           f"HTTP {response.status}")
    except (OSError, http.client.HTTPException) as exc:
        return PostOutcome(None, "", f"{type(exc).__name__}: {exc}"[:1000])
    finally:
        conn.close()
