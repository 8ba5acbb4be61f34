"""Domain errors raised by services. The API's exception handler maps them to RFC 9457 problems."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import RequestDataTooBig


class DomainError(Exception):
    status = 400
    title = "Bad request"
    slug = "bad-request"

    def __init__(self, detail: str = "", *, errors: dict[str, list[str]] | None = None, **extra: Any):
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = errors
        self.extra = extra


class ValidationFailed(DomainError):
    status = 400
    title = "Validation failed"
    slug = "validation-error"


class NotAuthenticated(DomainError):
    """401: the request carries no (valid) credentials where a signed-in user is needed. The problem handlers add
    `WWW-Authenticate`, as for DRF's own 401s."""

    status = 401
    title = "Authentication required"
    slug = "not-authenticated"


class PermissionDenied(DomainError):
    status = 403
    title = "Permission denied"
    slug = "permission-denied"


class NotFound(DomainError):
    status = 404
    title = "Not found"
    slug = "not-found"


class Conflict(DomainError):
    status = 409
    title = "Conflict"
    slug = "conflict"


class InvalidTransition(Conflict):
    title = "Illegal state transition"
    slug = "invalid-transition"

    def __init__(self, *, current: str, target: str, allowed: list[str], detail: str = "", **extra: Any):
        """`allowed`: the statuses the state machine allows from `current`. `detail` replaces the default message
        when the refusal needs more words (an event that does not apply here although the target is reachable
        by another); `extra` adds fields to the problem."""
        super().__init__(
            detail
            or f"Cannot go from '{current}' to '{target}'. Allowed from '{current}': " + (", ".join(allowed) or "none"),
            current=current,
            target=target,
            allowed=allowed,
            **extra,
        )


class PreconditionFailed(DomainError):
    status = 412
    title = "Precondition failed"
    slug = "precondition-failed"


class PayloadTooLarge(DomainError, RequestDataTooBig):
    """413. Also a RequestDataTooBig, so that raised where Django handles it (a middleware reading the form, a
    plain Django view) it still becomes a 413 (see problems.handler400), not a 500."""

    status = 413
    title = "Payload too large"
    slug = "payload-too-large"


class QuotaExceeded(DomainError):
    status = 429
    title = "Quota exceeded"
    slug = "quota-exceeded"

    def __init__(self, detail: str, *, limit: str, retry_after: int, **extra: Any):
        super().__init__(detail, limit=limit, retry_after=retry_after, **extra)
        self.retry_after = retry_after
