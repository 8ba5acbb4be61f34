"""Outbound webhook HTTP: an SSRF guard, a total deadline and a cap on what is read.

- The target's host is resolved once, every address is checked by `address_refusal`, and the connection is made
  to the checked address (so a DNS answer that changes between the check and the connect cannot point us
  inside). The same check runs when a subscription is saved and before every attempt. Redirects are not followed.
- One attempt (resolution, connect, TLS handshake, sending, reading the answer) ends at its deadline however the
  receiver paces its bytes: every socket operation gets only the time left, not a fresh timeout.
- At most `max_response_bytes` of the answer's body are read.

No Django imports."""

from __future__ import annotations

import http.client
import io
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

USER_AGENT = "ModelCommons-Webhooks/1.0"
MAX_URL_LENGTH = 1000
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024
_READ_CHUNK = 8192

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeTarget(ValueError):
    """The URL may not be used as a webhook target."""


class DeadlineExceeded(TimeoutError):
    """The attempt's total time is used up."""


# --- which addresses may be targets ----------------------------------------------------------------------------

_net = ipaddress.ip_network

# Never targets, whatever MC_WEBHOOKS_ALLOW_PRIVATE says.
_V4_NEVER = (
    (_net("0.0.0.0/8"), "in 0.0.0.0/8 (this host)"),
    (_net("169.254.0.0/16"), "link-local (where cloud metadata services answer)"),
    (_net("224.0.0.0/4"), "multicast"),
    (_net("240.0.0.0/4"), "reserved or broadcast"),
)
_V6_NEVER = (
    (_net("::/128"), "unspecified"),
    (_net("100::/64"), "discard-only"),
    (_net("fe80::/10"), "link-local"),
    (_net("ff00::/8"), "multicast"),
    (_net("2001::/32"), "a Teredo tunnel address (its IPv4 end is hidden)"),
)
# Not on the public internet: targets only when private targets are allowed (tests, local development).
# Python's is_global is not enough on its own (3.11 calls 192.0.0.8, 64:ff9b:1::/48 and fec0::/10 global).
_V4_LOCAL = tuple(
    _net(n)
    for n in (
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
    )
)
_V6_LOCAL = tuple(
    _net(n)
    for n in (
        "::1/128",
        "fc00::/7",
        "fec0::/10",
        "2001::/23",
        "2001:db8::/32",
        "3fff::/20",
    )
)
_V6_GLOBAL_UNICAST = _net("2000::/3")
# IPv6 spellings of IPv4 addresses: judged by the IPv4 address they reach.
_V4_COMPATIBLE = _net("::/96")
_NAT64 = _net("64:ff9b::/96")  # RFC 6052 well-known prefix: the IPv4 address is the last 32 bits
_NAT64_LOCAL = _net("64:ff9b:1::/48")  # RFC 8215 local-use prefix, RFC 6052 /48 layout


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for: IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d),
    NAT64 (64:ff9b::/96 and 64:ff9b:1::/48) and 6to4 (2002::/16). None for every other address."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    n = int(ip)
    if ip in _NAT64:
        return ipaddress.IPv4Address(n & 0xFFFFFFFF)
    if ip in _NAT64_LOCAL:  # bits 48-63 hold the first two octets, bits 72-87 the last two (bits 64-71 are zero)
        return ipaddress.IPv4Address(((n >> 64) & 0xFFFF) << 16 | ((n >> 40) & 0xFFFF))
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _V4_COMPATIBLE and n > 1:  # :: and ::1 are not IPv4 addresses
        return ipaddress.IPv4Address(n & 0xFFFFFFFF)
    return None


def _local(ip: IPAddress) -> str:
    return f"{ip} is a loopback, private or reserved address"


def _never(ip: IPAddress, what: str) -> str:
    return f"{ip} is {what}, never a webhook target"


def _ipv4_refusal(ip: ipaddress.IPv4Address, allow_private: bool) -> str | None:
    for net, what in _V4_NEVER:
        if ip in net:
            return _never(ip, what)
    if ip.is_global and not any(ip in net for net in _V4_LOCAL):
        return None
    return None if allow_private else _local(ip)


def address_refusal(ip: IPAddress, *, allow_private: bool) -> str | None:
    """Why no connection may be made to `ip` (None: it may). Link-local, multicast, unspecified, reserved and
    tunnel addresses are never targets; loopback, private, site-local and unique-local ones only with
    `allow_private`. IPv6 addresses that stand for an IPv4 address are judged by that IPv4 address."""
    if isinstance(ip, ipaddress.IPv4Address):
        return _ipv4_refusal(ip, allow_private)
    if ip.scope_id is not None:
        ip = ipaddress.IPv6Address(str(ip).split("%", 1)[0])
    for net, what in _V6_NEVER:
        if ip in net:
            return _never(ip, what)
    v4 = embedded_ipv4(ip)
    if v4 is not None:
        if ip in _V4_COMPATIBLE:
            return _never(ip, f"a deprecated IPv4-compatible spelling of {v4}")
        inner = _ipv4_refusal(v4, allow_private)
        if inner is not None:
            return f"{ip} stands for the IPv4 address {v4}, and {inner}"
        if ip in _NAT64_LOCAL and not allow_private:
            return _local(ip)
        return None
    if any(ip in net for net in _V6_LOCAL):
        return None if allow_private else _local(ip)
    if ip not in _V6_GLOBAL_UNICAST:
        return _never(ip, "in a reserved range")
    if ip.is_global:
        return None
    return None if allow_private else _local(ip)


def _odd_ipv4_spelling(host: str) -> str | None:
    """The dotted-quad form of a host that the C library reads as an IPv4 address written some other way
    (`2130706433`, `0177.0.0.1`, `0x7f.1`, `127.1`), else None."""
    try:
        packed = socket.inet_aton(host)
    except (OSError, ValueError):
        return None
    canonical = socket.inet_ntoa(packed)
    return None if canonical == host else canonical


# --- resolving and checking a URL --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str
    address: str


def _resolve(host: str, port: int, timeout: float) -> list[Any]:
    """getaddrinfo, given up on after `timeout` seconds (the C call cannot be interrupted: it finishes in a
    daemon thread, bounded by the resolver's own timeouts)."""
    answer: dict[str, Any] = {}

    def lookup() -> None:
        try:
            answer["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except Exception as exc:  # noqa: BLE001 - gaierror, UnicodeError, ValueError: the host does not resolve
            answer["error"] = exc

    thread = threading.Thread(target=lookup, name="webhook-dns", daemon=True)
    thread.start()
    thread.join(max(timeout, 0.0))
    if thread.is_alive():
        raise UnsafeTarget(f"The host '{host}' did not resolve within {timeout:g} s.")
    if "infos" not in answer:
        raise UnsafeTarget(f"The host '{host}' does not resolve.") from answer.get("error")
    return list(answer["infos"])


def resolve_target(url: str, *, allow_private: bool, timeout: float = DEFAULT_TIMEOUT_S) -> Target:
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
    canonical = _odd_ipv4_spelling(host)
    if canonical is not None:
        raise UnsafeTarget(
            f"Write an IPv4 address as four decimal numbers: '{host}' is another spelling of {canonical}."
        )
    addresses = list(dict.fromkeys(str(info[4][0]) for info in _resolve(host, port, timeout)))
    if not addresses:
        raise UnsafeTarget(f"The host '{host}' does not resolve.")
    for address in addresses:
        reason = address_refusal(ipaddress.ip_address(address.split("%", 1)[0]), allow_private=allow_private)
        if reason:
            raise UnsafeTarget(f"Refused: '{host}' resolves to {reason}.")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(scheme=parts.scheme, host=host, port=port, path=path, address=addresses[0])


# --- one HTTP attempt under a deadline -----------------------------------------------------------------------------


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlineExceeded("the attempt's deadline passed")
    return left


class _DeadlineSocket:
    """A connected (plain or TLS) socket whose every send and receive may take only the time left before the
    deadline: a receiver that sends one byte a second meets the deadline, not a fresh timeout per byte.
    Provides what http.client uses: sendall, makefile("rb") and close."""

    def __init__(self, sock: socket.socket, deadline: float):
        self._sock = sock
        self._deadline = deadline
        self._readers = 0
        self._closed = False

    def sendall(self, data: bytes) -> None:
        view = memoryview(data).cast("B")
        while view:
            self._sock.settimeout(_left(self._deadline))
            sent = self._sock.send(view)
            view = view[sent:]

    def recv_into(self, buffer: Any) -> int:
        self._sock.settimeout(_left(self._deadline))
        return self._sock.recv_into(buffer)

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        if mode != "rb":
            raise ValueError("only binary reading is supported")
        self._readers += 1
        return io.BufferedReader(_DeadlineReader(self), _READ_CHUNK)

    def close(self) -> None:
        # Like socket.close with makefile(): the descriptor stays open while a reader uses it.
        self._closed = True
        if self._readers <= 0:
            self._sock.close()

    def reader_closed(self) -> None:
        self._readers -= 1
        if self._closed and self._readers <= 0:
            self._sock.close()

    def abort(self) -> None:
        self._sock.close()


class _DeadlineReader(io.RawIOBase):
    def __init__(self, owner: _DeadlineSocket):
        self._owner = owner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._owner.recv_into(buffer)

    def close(self) -> None:
        if not self.closed:
            self._owner.reader_closed()
        super().close()


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the checked address (never resolving the host again), under the attempt's deadline."""

    def __init__(self, target: Target, deadline: float):
        super().__init__(target.host, target.port)
        self._address = target.address
        self._deadline = deadline
        self.deadline_sock: _DeadlineSocket | None = None

    def _wrap(self, sock: socket.socket) -> socket.socket:
        return sock

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), timeout=_left(self._deadline))
        try:
            sock.settimeout(_left(self._deadline))
            sock = self._wrap(sock)  # the TLS handshake, if any, within the time left
        except BaseException:
            sock.close()
            raise
        self.deadline_sock = _DeadlineSocket(sock, self._deadline)
        self.sock = self.deadline_sock


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    default_port = 443

    def _wrap(self, sock: socket.socket) -> socket.socket:
        return ssl.create_default_context().wrap_socket(sock, server_hostname=self.host)


@dataclass(frozen=True)
class PostOutcome:
    status_code: int | None
    excerpt: str
    error: str

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _read_capped(response: http.client.HTTPResponse, limit: int) -> tuple[bytes, bool]:
    """At most `limit` bytes of the body, as they come; True if the deadline cut the body short."""
    data = bytearray()
    try:
        while len(data) < limit:
            chunk = response.read1(min(_READ_CHUNK, limit - len(data)))
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        return bytes(data), True
    return bytes(data), False


def post_json(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout: float,
    allow_private: bool,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
) -> PostOutcome:
    """POST a JSON body. The whole attempt ends within `timeout` seconds; at most `max_response_bytes` of the
    answer's body are read. Network errors, refusals and the deadline come back as an outcome, never as an
    exception. A 2xx whose body is cut by the deadline still counts: the receiver accepted the message."""
    deadline = time.monotonic() + timeout
    try:
        target = resolve_target(url, allow_private=allow_private, timeout=timeout)
    except UnsafeTarget as exc:
        return PostOutcome(None, "", str(exc))
    conn_cls = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    conn = conn_cls(target, deadline)
    late = f"the {timeout:g} s deadline of an attempt passed"
    try:
        conn.request(
            "POST",
            target.path,
            body=body,
            headers={
                **headers,
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
            },
        )
        response = conn.getresponse()
        try:
            data, cut = _read_capped(response, max_response_bytes)
        finally:
            response.close()
        excerpt = data.decode("utf-8", "replace")
        status = response.status
        error = "" if 200 <= status < 300 else f"HTTP {status}"
        if cut:
            error = f"{error}; " if error else ""
            error += f"the answer's body was cut off: {late}"
        return PostOutcome(status, excerpt, error)
    except TimeoutError:
        return PostOutcome(None, "", f"No complete answer: {late} (connect, send and read together).")
    except (OSError, http.client.HTTPException) as exc:
        return PostOutcome(None, "", f"{type(exc).__name__}: {exc}"[:1000])
    finally:
        conn.close()
        if conn.deadline_sock is not None:
            conn.deadline_sock.abort()
