"""Writing and verifying the audit chain."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import models, transaction
from django.utils import timezone

from apps.core.middleware import current_request_id

from .models import GENESIS_HASH, AuditChainHead, AuditEvent

if TYPE_CHECKING:
    # Who acted: the user model or an anonymous user, None for the system. Audit sits below accounts and may not
    # import its User; django-stubs resolves this alias to AUTH_USER_MODEL (accounts.User) | AnonymousUser.
    from django.contrib.auth.models import _AnyUser as AuditActor


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _normalize(value: Any) -> Any:
    # What the JSONField stores must be exactly what was hashed: round-trip through JSON first.
    return None if value is None else json.loads(canonical_json(value))


def chain_hash(prev_hash: str, payload: dict[str, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical_json(payload)).encode()).hexdigest()


def _target_fields(target: Any) -> tuple[str, str, str]:
    if isinstance(target, models.Model):
        meta = target._meta
        return f"{meta.app_label}.{meta.model_name}", str(target.pk), str(target)[:255]
    if isinstance(target, tuple):
        kind, ident = target[0], target[1]
        label = target[2] if len(target) > 2 else f"{kind}:{ident}"
        return str(kind), str(ident), str(label)[:255]
    raise TypeError("audit target must be a model instance or a (type, id[, repr]) tuple")


def audit_record(
    *,
    actor: AuditActor | None,
    verb: str,
    target: Any,
    before: Any = None,
    after: Any = None,
    request_id: str | None = None,
) -> AuditEvent:
    """Append one event to the chain. Call it inside the service's own transaction, as late as possible:
    the chain head stays locked until that transaction commits."""
    return audit_record_many(actor=actor, verb=verb, events=[(target, before, after)], request_id=request_id)[0]


def audit_record_many(
    *, actor: AuditActor | None, verb: str, events: list[tuple[Any, Any, Any]], request_id: str | None = None
) -> list[AuditEvent]:
    """Append several events by one actor with one verb, as (target, before, after), in order: the chain head
    is locked, read and written once, and the events are inserted in one statement (a batch service's
    audit costs three queries, not three per item)."""
    if not events:
        return []
    actor_obj = actor if actor is not None and actor.is_authenticated else None
    request_id = request_id or current_request_id.get() or ""
    # No savepoint: the events stand or fall with the caller's transaction (and save two round trips).
    with transaction.atomic(savepoint=False):
        head, _ = AuditChainHead.objects.select_for_update().get_or_create(id=1)
        seq, prev_hash = head.last_seq, head.last_hash
        rows = []
        for target, before, after in events:
            target_type, target_id, target_repr = _target_fields(target)
            seq += 1
            event = AuditEvent(
                seq=seq,
                created_at=timezone.now(),
                actor=actor_obj,
                actor_username=getattr(actor_obj, "username", "") or "",
                verb=verb,
                target_type=target_type,
                target_id=target_id,
                target_repr=target_repr,
                before=_normalize(before),
                after=_normalize(after),
                request_id=request_id,
                prev_hash=prev_hash,
            )
            event.hash = prev_hash = chain_hash(prev_hash, event.canonical_payload())
            rows.append(event)
        if len(rows) == 1:
            rows[0].save()
        else:
            AuditEvent.objects.bulk_create(rows)
        AuditChainHead.objects.filter(id=1).update(last_seq=seq, last_hash=prev_hash)
    return rows


@dataclass
class ChainReport:
    ok: bool
    checked: int
    broken_seq: int | None = None
    broken_id: int | None = None
    reason: str = ""


def audit_chain_verify(batch_size: int = 2000) -> ChainReport:
    """Walk the chain in order and report the first link that does not hold."""
    expected_prev = GENESIS_HASH
    expected_seq = 1
    checked = 0
    for event in AuditEvent.objects.order_by("seq").iterator(chunk_size=batch_size):
        if event.seq != expected_seq:
            return ChainReport(
                False,
                checked,
                expected_seq,
                event.id,
                f"sequence gap: expected #{expected_seq}, found #{event.seq} (rows deleted?)",
            )
        if event.prev_hash != expected_prev:
            return ChainReport(
                False, checked, event.seq, event.id, "prev_hash does not match the previous event's hash"
            )
        recomputed = chain_hash(event.prev_hash, event.canonical_payload())
        if recomputed != event.hash:
            return ChainReport(
                False, checked, event.seq, event.id, "content does not match its hash (row was modified)"
            )
        expected_prev = event.hash
        expected_seq += 1
        checked += 1
    head = AuditChainHead.objects.filter(id=1).first()
    if head is not None and head.last_seq != checked:
        return ChainReport(
            False,
            checked,
            checked + 1,
            None,
            f"chain head says #{head.last_seq} but only {checked} events exist (tail deleted?)",
        )
    return ChainReport(True, checked)
