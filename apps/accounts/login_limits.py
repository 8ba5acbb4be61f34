"""Login throttling: failed password logins are limited per account and per client address.

Every password login goes through `django.contrib.auth.authenticate()` and so through `LimitedModelBackend`
(apps/accounts/backends.py): HTTP Basic on the API, the web login and the admin login alike. The backend asks
`login_blocked` first and, while a lock holds, refuses without checking the password; otherwise it checks it and
reports the outcome to `login_failed` / `login_succeeded`.

- **Counting**: failures are counted per account (the username as typed, case-folded, whether or not such an
  account exists, so a lock says nothing about existence) and per client address (`apps.core.throttling`: the
  address seen through MC_TRUSTED_PROXIES trusted proxies, an IPv6 client by its /64), in a sliding window of
  MC_LOGIN_WINDOW_S seconds (two fixed windows, the previous one weighted by how much of it still overlaps).
- **Locking**: the failure that brings a count to MC_LOGIN_FAILURES_PER_ACCOUNT (10) or
  MC_LOGIN_FAILURES_PER_ADDRESS (50) locks that account or address for MC_LOGIN_LOCKOUT_S seconds (15 minutes):
  every password login to the account, or from the address, is then refused with 429 and Retry-After, the right
  password included. The lock is logged, and audited (`login.lock`, no actor) for an existing account or an
  address; a lock on a username nobody has is only logged, so no attacker-chosen name enters the audit chain.
- **Success** clears the account's failure count (only someone who knows the password can do that, and a user who
  mistyped a few times starts afresh); it never touches any address count, so logging in to an account of one's
  own does not buy more guesses at others.
- **Storage**: the default cache, which the settings make shared by every process (Redis when configured, the
  database cache otherwise). Keys are HMACs of the username or address under SECRET_KEY, so the cache holds
  neither. Counts use the cache's atomic `incr` where it has one (Redis); the database cache may lose a count
  under concurrent failures, which at most delays a lock by that much.
- Bearer tokens are not passwords and are not limited here (the API throttles apply to them as to everything).
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.contrib.admin import AdminSite
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponseBase
from django.utils.crypto import salted_hmac

from apps.audit.services import audit_record
from apps.core.throttling import address_bucket, client_address

from .models import User

logger = logging.getLogger(__name__)

ACCOUNT = "account"
ADDRESS = "address"
_REQUEST_ATTR = "_mc_login_block"
_HMAC_SALT = "apps.accounts.login_limits"


@dataclass(frozen=True)
class LoginBlock:
    """A lock in force: on the account or on the client address, for `retry_after` more seconds."""

    scope: str
    retry_after: int

    @property
    def message(self) -> str:
        minutes = max(1, math.ceil(self.retry_after / 60))
        what = "this account" if self.scope == ACCOUNT else "your network address"
        return (
            f"Too many failed logins for {what}. Logins are paused for about {minutes} minute"
            f"{'s' if minutes != 1 else ''}; try again later, or reset your password."
        )


def _now() -> float:
    # One clock for the counters and the locks; tests move it instead of sleeping.
    return time.time()


def _base_key(scope: str, ident: str) -> str:
    return f"login:{scope}:{salted_hmac(_HMAC_SALT, f'{scope}:{ident}').hexdigest()[:32]}"


def _subjects(username: str | None, address: str | None) -> list[tuple[str, str, str, int]]:
    """(scope, base key, what to log, limit) for each thing this login attempt counts against."""
    subjects = []
    if username:
        name = username.casefold()
        subjects.append((ACCOUNT, _base_key(ACCOUNT, name), name, settings.MC_LOGIN_FAILURES_PER_ACCOUNT))
    bucket = address_bucket(address)
    if bucket:
        subjects.append((ADDRESS, _base_key(ADDRESS, bucket), bucket, settings.MC_LOGIN_FAILURES_PER_ADDRESS))
    return subjects


def login_blocked(*, username: str | None, address: str | None) -> LoginBlock | None:
    """The lock, if any, that refuses a password login to `username` from `address` now (the longest one)."""
    subjects = _subjects(username, address)
    if not subjects:
        return None
    now = _now()
    locks = cache.get_many([f"{base}:lock" for _, base, _, _ in subjects])
    blocks = [
        LoginBlock(scope, math.ceil(until - now))
        for scope, base, _, _ in subjects
        if (until := locks.get(f"{base}:lock")) is not None and until > now
    ]
    return max(blocks, key=lambda b: b.retry_after) if blocks else None


def _count_failure(base: str, now: float, window: int) -> int:
    slot = int(now // window)
    key = f"{base}:{slot}"
    cache.add(key, 0, timeout=2 * window)
    try:
        current = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=2 * window)
        current = 1
    # Redis keeps a key's expiry on INCR; the database cache rewrites the entry with the default timeout.
    cache.touch(key, timeout=2 * window)
    previous = cache.get(f"{base}:{slot - 1}") or 0
    overlap = 1 - (now - slot * window) / window
    return current + int(previous * overlap)


def login_failed(*, username: str | None, address: str | None) -> None:
    """Count one failed password login; lock the account or the address that reaches its limit."""
    now = _now()
    window = settings.MC_LOGIN_WINDOW_S
    lockout = settings.MC_LOGIN_LOCKOUT_S
    for scope, base, ident, limit in _subjects(username, address):
        failures = _count_failure(base, now, window)
        if failures < limit:
            continue
        lock_key = f"{base}:lock"
        current = cache.get(lock_key)
        if current is not None and current > now:
            continue
        cache.set(lock_key, now + lockout, timeout=lockout + 1)
        _report_lock(scope=scope, ident=ident, failures=failures, address=address, until=now + lockout)


def login_succeeded(*, username: str) -> None:
    """A right password clears the account's failure count (not any address's)."""
    base = _base_key(ACCOUNT, username.casefold())
    slot = int(_now() // settings.MC_LOGIN_WINDOW_S)
    cache.delete_many([f"{base}:{slot}", f"{base}:{slot - 1}"])


def _report_lock(*, scope: str, ident: str, failures: int, address: str | None, until: float) -> None:
    window = settings.MC_LOGIN_WINDOW_S
    until_iso = datetime.fromtimestamp(until, tz=UTC).isoformat(timespec="seconds")
    logger.warning(
        "login locked: %s %.100r after %d failed logins in %d s (the last from %s), until %s",
        scope,
        ident,
        failures,
        window,
        address or "an unknown address",
        until_iso,
    )
    after = {"scope": scope, "failures": failures, "window_s": window, "until": until_iso, "last_address": address}
    if scope == ACCOUNT:
        user = User.objects.filter(username__iexact=ident).first()
        if user is None:
            return
        audit_record(actor=None, verb="login.lock", target=user, after=after)
    else:
        audit_record(actor=None, verb="login.lock", target=("client_address", ident), after=after)


def request_address(request: Any) -> str | None:
    return None if request is None or not hasattr(request, "META") else client_address(request)


def mark_blocked(request: Any, block: LoginBlock) -> None:
    if request is not None:
        setattr(request, _REQUEST_ATTR, block)


def login_block_of(request: Any) -> LoginBlock | None:
    """The lock that made `authenticate()` refuse this request's login, if that is why it returned None."""
    return getattr(request, _REQUEST_ATTR, None) if request is not None else None


def limited_login_view(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Wrap a login page (the web login, the admin login): a POST refused because of a lock answers 429 with
    Retry-After, the page saying why (the form's error; see `LimitedLoginFormMixin`)."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        response = view(request, *args, **kwargs)
        block = login_block_of(request)
        if block is not None:
            response.status_code = 429
            response["Retry-After"] = str(block.retry_after)
        return response

    return wrapped


class LimitedLoginFormMixin:
    """For Django's AuthenticationForm and its subclasses: when the login was refused because of a lock, say so
    instead of "enter a correct username and password"."""

    request: HttpRequest | None

    def get_invalid_login_error(self) -> ValidationError:
        block = login_block_of(self.request)
        if block is not None:
            return ValidationError(block.message, code="login_throttled")
        return super().get_invalid_login_error()  # type: ignore[misc, no-any-return]


class AdminLoginForm(LimitedLoginFormMixin, AdminAuthenticationForm):
    pass


def limit_admin_login(site: AdminSite) -> None:
    """The admin's own login page gets the same answer as the web login (the backend limits it either way)."""
    site.login_form = AdminLoginForm
    site.login = limited_login_view(site.login)  # type: ignore[method-assign, assignment]
