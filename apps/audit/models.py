"""The audit trail: append-only events, each with its own keyed content hash, sealed in order into a signed chain
of Merkle-rooted batches (AuditSeal), so any later edit, insertion or deletion is detectable. How and why is
explained in apps/audit/services.py."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

from .querysets import AppendOnlyError, AuditEventQuerySet, AuditSealQuerySet

GENESIS_HASH = "0" * 64


class AuditEvent(models.Model):
    seq = models.BigIntegerField(unique=True, editable=False)
    created_at = models.DateTimeField(editable=False, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_username = models.CharField(max_length=150, blank=True, default="")
    verb = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64, db_index=True)
    target_id = models.CharField(max_length=64, db_index=True)
    target_repr = models.CharField(max_length=255, blank=True, default="")
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    request_id = models.CharField(max_length=128, blank=True, default="")
    # Events appended before the sealed format (migration 0002) were hash-chained: prev_hash is the previous
    # event's hash and hash = sha256(prev_hash + canonical JSON). Events appended since carry prev_hash "" and
    # hash = HMAC-SHA256(audit key, canonical JSON): their own content hash, computed without any lock.
    prev_hash = models.CharField(max_length=64, editable=False, blank=True, default="")
    hash = models.CharField(max_length=64, unique=True, editable=False)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["seq"]
        indexes = [models.Index(fields=["target_type", "target_id", "seq"])]

    def __str__(self) -> str:
        return f"#{self.seq} {self.actor_username or 'system'} {self.verb} {self.target_type}:{self.target_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise AppendOnlyError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("Audit events are append-only.")

    def canonical_payload(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "created_at": self.created_at.isoformat(),
            "actor_id": self.actor_id,
            "actor_username": self.actor_username,
            "verb": self.verb,
            "target_type": self.target_type,
            "target_id": self.target_id,
            "target_repr": self.target_repr,
            "before": self.before,
            "after": self.after,
            "request_id": self.request_id,
        }


class AuditChainHead(models.Model):  # noqa: DJ008 - a singleton row, never displayed
    """SQLite only: the sequence allocator of events (SQLite has no sequences and serializes writers anyway).
    On PostgreSQL events take their seq from the sequence audit_event_seq and nothing locks this row."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_seq = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default=GENESIS_HASH)


class AuditSeal(models.Model):
    """One sealed batch of the log (a "signed tree head"): it covers every seq in (first_seq - 1, last_seq],
    lists the seqs in that range that no committed event holds (rolled-back transactions), and commits to the
    events that do hold one by the Merkle root of their (seq, hash) leaves. Seals chain: hash covers the previous
    seal's hash and this seal's fields, and signature = HMAC(audit key, hash), so only the sealer can make one."""

    number = models.BigIntegerField(unique=True, editable=False)
    created_at = models.DateTimeField(editable=False)
    first_seq = models.BigIntegerField(editable=False)
    last_seq = models.BigIntegerField(unique=True, editable=False)
    count = models.BigIntegerField(editable=False)
    skipped = models.JSONField(default=list, blank=True, editable=False)  # [[start, end], ...] inclusive
    root = models.CharField(max_length=64, editable=False)
    prev_hash = models.CharField(max_length=64, editable=False)
    hash = models.CharField(max_length=64, unique=True, editable=False)
    signature = models.CharField(max_length=64, editable=False)

    objects = AuditSealQuerySet.as_manager()

    class Meta:
        ordering = ["number"]

    def __str__(self) -> str:
        return f"seal {self.number}: #{self.first_seq}..#{self.last_seq} ({self.count} events)"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise AppendOnlyError("Audit seals are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("Audit seals are append-only.")

    def canonical_body(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "created_at": self.created_at.isoformat(),
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "count": self.count,
            "skipped": self.skipped,
            "root": self.root,
        }
