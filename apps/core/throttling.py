"""Who is the client: its address as seen through the trusted proxies only, and the API throttles keyed by it.

`client_address` is the one place that reads REMOTE_ADDR and X-Forwarded-For; the API throttles below and login
throttling (apps/accounts/login_limits.py) both use it. The throttles keep their counters in the default cache,
which the settings make shared by every process (Redis, or the database cache)."""

from __future__ import annotations

import ipaddress
from typing import Any

from django.conf import settings
from rest_framework import throttling


def _parse(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # "[2001:db8::1]:443", as some proxies write it
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # "203.0.113.7:5123"
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_address(request: Any) -> str | None:
    """The client's IP address, trusting X-Forwarded-For only as far as MC_TRUSTED_PROXIES proxies wrote it.

    Each of the N trusted proxies appends the address it received the request from, so the client is the Nth
    entry from the right; whatever stands further left came from the client and is ignored. With 0 (the default:
    nothing in front of the application server) the header is ignored and REMOTE_ADDR is the client. None when
    no usable address is known."""
    meta = request.META
    trusted = settings.MC_TRUSTED_PROXIES
    candidate = meta.get("REMOTE_ADDR") or ""
    if trusted > 0:
        forwarded = [part for part in (meta.get("HTTP_X_FORWARDED_FOR") or "").split(",") if part.strip()]
        if forwarded:
            # Fewer entries than proxies: the request skipped the outer proxies, and every entry was still
            # written by one of ours, so the leftmost is the closest we have to the client.
            candidate = forwarded[-min(trusted, len(forwarded))]
    address = _parse(candidate)
    return None if address is None else str(address)


def address_bucket(address: str | None) -> str | None:
    """What limits count per client address: the address itself, or its /64 for IPv6 (one subscriber usually
    holds a whole /64, and would otherwise get a fresh allowance per address)."""
    if address is None:
        return None
    parsed = ipaddress.ip_address(address)
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


class ClientAddressIdentMixin:
    """DRF keys anonymous throttling by `get_ident`, which trusts X-Forwarded-For whole unless NUM_PROXIES is set
    (and then in its own way): use the one client address instead."""

    def get_ident(self, request: Any) -> str:
        return address_bucket(client_address(request)) or "unknown"


class AtomicHistoryMixin:
    """DRF's sliding-log throttle (the same rule: at most `num_requests` accepted in any `duration` seconds, refused
    requests not counted, the same Retry-After), kept in a Redis sorted set when the shared cache is Redis
    (apps.core.cache.RedisCache): one atomic round trip per request. DRF's own keeps the log as one pickled list
    that it reads and writes back whole: two round trips, a payload that grows with the rate (3,000 timestamps a
    user at the default 3000/min), and hits lost when two processes interleave. Other caches keep DRF's way."""

    # The client's identity is the key's hash tag: the throttles of one request (user and scope, or anonymous and
    # scope) count under keys of one Redis Cluster slot, as their one MULTI/EXEC requires. (DRF's format is
    # 'throttle_%(scope)s_%(ident)s'.)
    cache_format = "throttle:{%(ident)s}:%(scope)s"

    cache: Any
    duration: int
    key: str | None
    now: float
    num_requests: int
    rate: str | None
    timer: Any

    def counted_key(self, request: Any, view: Any) -> str | None:
        """The key this request counts under, or None when this throttle lets it through uncounted."""
        if self.rate is None:
            return None
        return self.get_cache_key(request, view)  # type: ignore[attr-defined,no-any-return]

    def settle(self, key: str, count: int, oldest: float, member: str) -> bool:
        """Accept or refuse, given what `sliding_window_hit` answered for the hit recorded at `self.now`."""
        if count <= self.num_requests:
            return True
        self.cache.sliding_window_forget(key, member)
        # What DRF's wait() reads: the hits that stand (the oldest last).
        self.history = [oldest] * (count - 1)
        return False

    def allow_request(self, request: Any, view: Any) -> bool:
        hit = getattr(self.cache, "sliding_window_hit", None)
        if hit is None:
            return bool(super().allow_request(request, view))  # type: ignore[misc]
        key = self.counted_key(request, view)
        if key is None:
            return True
        self.key = key
        self.now = self.timer()
        return self.settle(key, *hit(key, self.now, self.duration))


class AtomicSimpleRateThrottle(AtomicHistoryMixin, throttling.SimpleRateThrottle):
    """Below DRF's own classes in the MRO, so that ScopedRateThrottle picks its scope and rate first."""


class AnonRateThrottle(ClientAddressIdentMixin, throttling.AnonRateThrottle, AtomicSimpleRateThrottle):
    pass


class UserRateThrottle(ClientAddressIdentMixin, throttling.UserRateThrottle, AtomicSimpleRateThrottle):
    pass


class ScopedRateThrottle(ClientAddressIdentMixin, throttling.ScopedRateThrottle, AtomicSimpleRateThrottle):
    def counted_key(self, request: Any, view: Any) -> str | None:
        # What DRF's allow_request does first: the view's scope, and its rate (none: not throttled here).
        self.scope = getattr(view, self.scope_attr, None)
        if not self.scope:
            return None
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)  # type: ignore[assignment] # a rate: ints
        return super().counted_key(request, view)


class ApiRateThrottles(throttling.BaseThrottle):
    """The API's three throttles (anonymous, per user, per scope) in one Redis round trip: each one's rule, key,
    log and Retry-After as when DRF runs them one after the other (every one counts the request it accepts; the
    ones that refuse it take their hit back; the longest wait is the answer), but their hits are recorded together
    in one MULTI/EXEC (`sliding_window_hits`) instead of one round trip each. With a cache other than Redis they
    simply run in turn."""

    parts = (AnonRateThrottle, UserRateThrottle, ScopedRateThrottle)

    def __init__(self) -> None:
        self.throttles = [cls() for cls in self.parts]
        self.refused: list[Any] = []

    def allow_request(self, request: Any, view: Any) -> bool:
        hits = getattr(self.throttles[0].cache, "sliding_window_hits", None)
        if hits is None:
            self.refused = [t for t in self.throttles if not t.allow_request(request, view)]
            return not self.refused
        counted: list[tuple[Any, str]] = []
        for throttle in self.throttles:
            key = throttle.counted_key(request, view)
            if key is not None:
                throttle.key, throttle.now = key, throttle.timer()
                counted.append((throttle, key))
        answers = hits([(key, t.now, t.duration) for t, key in counted]) if counted else []
        self.refused = [t for (t, key), answer in zip(counted, answers, strict=True) if not t.settle(key, *answer)]
        return not self.refused

    def wait(self) -> float | None:
        waits = [wait for wait in (t.wait() for t in self.refused) if wait is not None]
        return max(waits, default=None)
