"""The `Idempotency-Key` header (draft-ietf-httpapi-idempotency-key-header): a retried POST gets the first
response again instead of doing the work twice.

Records are keyed by (user, scope, key) and hold the request's fingerprint and the first successful response.
- The same key with the same body replays the stored status and body.
- The same key with a different body is a client bug: 422.
- Two concurrent requests with one key: the database's unique constraint lets one win; the other's work is
  rolled back and it replays the winner's response.
- Only 2xx responses are stored, so a refused request (400, 429) may be retried with the same key.
Records older than MC_IDEMPOTENCY_TTL_S are forgotten.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.core.errors import DomainError, ValidationFailed

from .models import IdempotencyRecord

if TYPE_CHECKING:
    from apps.accounts.types import Actor

HEADER = "Idempotency-Key"
# A key is 1 to 255 printable ASCII characters that neither starts nor ends with a space (HTTP strips those).
# The OpenAPI schema documents exactly this (KEY_SCHEMA), so clients and fuzzers know which keys are taken.
KEY_PATTERN = "^[!-~](?:[ -~]{0,253}[!-~])?$"
KEY_SCHEMA: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": KEY_PATTERN}
_KEY_RE = re.compile(KEY_PATTERN)


class IdempotencyKeyReused(DomainError):
    status = 422
    title = "Idempotency key reused"
    slug = "idempotency-key-reused"


class _LostRace(Exception):
    pass


def request_fingerprint(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _check_key(key: str) -> str:
    if not _KEY_RE.fullmatch(key):
        raise ValidationFailed(
            "Bad Idempotency-Key header.",
            errors={HEADER: ["1 to 255 printable ASCII characters, no space at either end."]},
        )
    return key


def _replay(record: IdempotencyRecord, fingerprint: str) -> tuple[int, dict[str, Any], bool]:
    if record.request_hash != fingerprint:
        raise IdempotencyKeyReused(
            f"The Idempotency-Key '{record.key}' was first used with a different request body; use a new key "
            f"for a different request."
        )
    return record.status_code, record.body, True


def idempotent(
    *, user: Actor, key: str, scope: str, fingerprint: str, produce: Callable[[], tuple[int, dict[str, Any]]]
) -> tuple[int, dict[str, Any], bool]:
    """Run `produce` once per (user, scope, key); returns (status, body, replayed)."""
    key = _check_key(key)
    now = timezone.now()
    ttl = timedelta(seconds=settings.MC_IDEMPOTENCY_TTL_S)
    record = IdempotencyRecord.objects.filter(user=user, scope=scope, key=key).first()
    if record is not None:
        if record.created_at >= now - ttl:
            return _replay(record, fingerprint)
        record.delete()
    try:
        with transaction.atomic():
            status, body = produce()
            if 200 <= status < 300:
                try:
                    with transaction.atomic():
                        IdempotencyRecord.objects.create(
                            user=user, scope=scope, key=key, request_hash=fingerprint, status_code=status, body=body
                        )
                except IntegrityError:
                    raise _LostRace from None
    except _LostRace:
        record = IdempotencyRecord.objects.get(user=user, scope=scope, key=key)
        return _replay(record, fingerprint)
    return status, body, False
