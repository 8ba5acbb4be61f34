"""Writing, sealing and verifying the audit log, without a global lock on the write path.

Until migration 0002 every append locked one row (the chain head) to read the previous event's hash, so every
audited write of the platform serialized through it. The log is now built the way append-only logs that must
scale are (Certificate Transparency: entries first, signed tree heads over batches later, by one sequencer):

Appending (`audit_record`, `audit_record_many`), no lock:
  - an event takes its `seq` from the PostgreSQL sequence `audit_event_seq` (nextval never blocks and is never
    rolled back), and
  - carries its own content hash: hash = HMAC-SHA256(audit key, canonical JSON of its fields, seq included).
    The key is settings.MC_AUDIT_KEY, else SECRET_KEY. Without the key nobody can rewrite an event and fix its
    hash, so tampering with an unsealed event is detected, as is moving it to another seq (reordering). The key
    must outlive the log: set MC_AUDIT_KEY to the current SECRET_KEY before rotating SECRET_KEY, or every event
    and seal made with the old key stops verifying.

Sealing (`audit_seal`), one sealer at a time (a transaction-level advisory lock that no writer takes), runs
  - on demand: `audit_verify` seals first, and `manage.py audit_seal` (for cron or a beat schedule);
  - after commits: at most every MC_AUDIT_SEAL_EVERY_S seconds (default 5; 0 turns it off) per process, a write
    that commits tries it (on_commit, without waiting: if another sealer holds the lock it is skipped, and it seals
    only what is final right now). The writes in between pay nothing for it.
A seal:
  - seals the next range of seqs (previous seal's last_seq, H] into an `AuditSeal`: the events' count, the
    Merkle root (RFC 6962 leaf/node hashing) of their (seq, hash) leaves, the list of seqs in the range that no
    event holds ("skipped"), and the previous seal's hash; its signature is an HMAC with the audit key. Seals form
    a chain, so once sealed no event can be removed, added, altered or reordered, and no seal dropped or forged,
    without `audit_verify` naming it;
  - checks every event's hash before sealing it and stops before the first bad one: it never vouches for a
    tampered row.

Gaps, the hard part. A seq can be missing for two reasons: the transaction that took it rolled back (nextval is
not transactional: a normal event), or its committed row was deleted (tampering). They look alike in the table,
so the sealer only seals a range once every transaction that could still commit a seq in it has ended:
  - it reads the sequence's last value V, then the clock t; any transaction that took a seq <= V had started
    by t;
  - it waits (bounded, `wait_s`) until no other client backend of this database has a transaction that started
    at or before t (pg_stat_activity.xact_start, the snapshot cleared on each poll; autovacuum is not a writer);
  - after that every seq <= V is final: a row present is committed, a seq absent is a rollback and is recorded
    in the seal as skipped. If the wait times out (a long transaction is open; a sealer after a commit does not
    wait at all) it keeps (V, t) as a checkpoint and seals up to the checkpoint of its previous attempt if that
    one is final by now, else only the gap-free prefix, which needs no such proof; the rest waits for the next
    run. A crashed writer is a rollback too: its backend ends, and so does its transaction.
So a deletion is distinguishable from a rollback once sealed; what remains is the window between an event's
commit and its seal, where an attacker with write access to the database could delete it as if it had rolled
back (its content, though, cannot be changed without the key). Sealing often keeps that window short; before,
an attacker with database access could rewrite the whole (unkeyed) chain at any time, so nothing is weakened.
The sealer's database role must see the writers' backends in pg_stat_activity (the same role, as in every
deployment here, or pg_read_all_stats).

The newest end of the log needs a witness outside the database, as a Certificate Transparency log's signed tree
heads need clients that remember them: whoever can delete rows can delete the newest seals together with events
they covered (the sealer would then re-seal what is left). So every seal is logged (logger apps.audit.services,
INFO: number, range, hash), `audit_verify` prints the newest seal's number and hash, and `audit_verify
--expect-seal N:HASH` checks that a seal once seen is still there, unchanged. (The old chain had the same limit:
its head row could be deleted with the tail.)

Events from before migration 0002 keep their chained format (prev_hash = the previous event's hash, hash =
sha256(prev_hash + canonical JSON)) and verify as before; the first seal covers them. On PostgreSQL the old chain
head row stays as the legacy anchor: the event at its last_seq must still exist with its last_hash.

SQLite (`make run`) has no sequences and serializes writers anyway: there the head row stays a simple locked
allocator, seqs stay dense (a rollback rolls the allocation back too), so any gap is a deletion and the head's
last_seq still catches a deleted tail.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection, models, transaction
from django.utils import timezone

from apps.core.middleware import current_request_id

from .models import GENESIS_HASH, AuditChainHead, AuditEvent, AuditSeal

if TYPE_CHECKING:
    from collections.abc import Iterator

    # Who acted: the user model or an anonymous user, None for the system. Audit sits below accounts and may not
    # import its User; django-stubs resolves this alias to AUTH_USER_MODEL (accounts.User) | AnonymousUser.
    from django.contrib.auth.models import _AnyUser as AuditActor

logger = logging.getLogger(__name__)
SEQUENCE = "audit_event_seq"  # created by migration 0002 on PostgreSQL; named literally in the SQL below
SEAL_LOCK_KEY = 0x4D43_4155_4449_54  # "MCAUDIT": only sealers take it
MAX_SEAL_EVENTS = 5000
SEAL_WAIT_S = 10.0
_next_seal_at = 0.0  # per process (time.monotonic): when a commit may try to seal again
_checkpoint: tuple[int, datetime] | None = None  # per process: (last seq, clock) read by a sealer that could not wait


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _normalize(value: Any) -> Any:
    # What the JSONField stores must be exactly what was hashed: round-trip through JSON first.
    return None if value is None else json.loads(canonical_json(value))


def _audit_key() -> bytes:
    key: str = getattr(settings, "MC_AUDIT_KEY", "") or settings.SECRET_KEY
    return key.encode()


def chain_hash(prev_hash: str, payload: dict[str, Any]) -> str:
    """The hash of an event appended before the sealed format (chained to the previous event)."""
    return hashlib.sha256((prev_hash + canonical_json(payload)).encode()).hexdigest()


def event_hash(payload: dict[str, Any]) -> str:
    """The keyed content hash of an event: it needs nothing but the event itself, so appending takes no lock."""
    return hmac.new(_audit_key(), b"event:" + canonical_json(payload).encode(), hashlib.sha256).hexdigest()


def merkle_root(leaves: list[bytes]) -> str:
    """RFC 6962 Merkle tree hash: leaves hashed with a 0x00 prefix, nodes with 0x01; an odd node moves up."""
    if not leaves:
        return hashlib.sha256(b"").hexdigest()
    level = [hashlib.sha256(b"\x00" + leaf).digest() for leaf in leaves]
    while len(level) > 1:
        paired = [hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0].hex()


def _leaf(event: AuditEvent) -> bytes:
    return f"{event.seq}:{event.hash}".encode()


def seal_hash(prev_hash: str, body: dict[str, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical_json(body)).encode()).hexdigest()


def seal_signature(hash_: str) -> str:
    return hmac.new(_audit_key(), b"seal:" + hash_.encode(), hashlib.sha256).hexdigest()


def _target_fields(target: Any) -> tuple[str, str, str]:
    if isinstance(target, models.Model):
        meta = target._meta
        return f"{meta.app_label}.{meta.model_name}", str(target.pk), str(target)[:255]
    if isinstance(target, tuple):
        kind, ident = target[0], target[1]
        label = target[2] if len(target) > 2 else f"{kind}:{ident}"
        return str(kind), str(ident), str(label)[:255]
    raise TypeError("audit target must be a model instance or a (type, id[, repr]) tuple")


def _is_postgres() -> bool:
    return connection.vendor == "postgresql"


def _allocate_seqs(count: int) -> list[int]:
    """`count` new seqs, in order. PostgreSQL: from the sequence, one query, no lock. SQLite: from the head row."""
    if _is_postgres():
        with connection.cursor() as cursor:
            cursor.execute("SELECT nextval('audit_event_seq') FROM generate_series(1, %s)", [count])
            return sorted(row[0] for row in cursor.fetchall())
    head, _ = AuditChainHead.objects.select_for_update().get_or_create(id=1)
    first = head.last_seq + 1
    AuditChainHead.objects.filter(id=1).update(last_seq=head.last_seq + count)
    return list(range(first, first + count))


def audit_record(
    *,
    actor: AuditActor | None,
    verb: str,
    target: Any,
    before: Any = None,
    after: Any = None,
    request_id: str | None = None,
) -> AuditEvent:
    """Append one event. Call it inside the service's own transaction: the event commits or rolls back with it.
    On PostgreSQL it takes no lock (see the module docstring)."""
    return audit_record_many(actor=actor, verb=verb, events=[(target, before, after)], request_id=request_id)[0]


def audit_record_many(
    *, actor: AuditActor | None, verb: str, events: list[tuple[Any, Any, Any]], request_id: str | None = None
) -> list[AuditEvent]:
    """Append several events by one actor with one verb, as (target, before, after), in order: their seqs are
    taken in one query and the events inserted in one statement (two queries on PostgreSQL, whatever the count)."""
    if not events:
        return []
    actor_obj = actor if actor is not None and actor.is_authenticated else None
    request_id = request_id or current_request_id.get() or ""
    # No savepoint: the events stand or fall with the caller's transaction (and save two round trips).
    with transaction.atomic(savepoint=False):
        seqs = _allocate_seqs(len(events))
        rows = []
        for seq, (target, before, after) in zip(seqs, events, strict=True):
            target_type, target_id, target_repr = _target_fields(target)
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
                prev_hash="",
            )
            event.hash = event_hash(event.canonical_payload())
            rows.append(event)
        if len(rows) == 1:
            rows[0].save()
        else:
            AuditEvent.objects.bulk_create(rows)
        if time.monotonic() >= _next_seal_at:
            transaction.on_commit(_seal_after_commit)
    return rows


def _seal_after_commit() -> None:
    """Seal what is final, now that a write committed, unless a commit of this process did so lately or another
    sealer is at work. Never fails the write: the next attempt, audit_seal or audit_verify catches up."""
    global _next_seal_at
    every = float(getattr(settings, "MC_AUDIT_SEAL_EVERY_S", 5.0))
    now = time.monotonic()
    if every <= 0 or now < _next_seal_at:
        return
    _next_seal_at = now + every
    try:
        audit_seal(wait_s=0, blocking=False)
    except Exception:
        logger.exception("audit: sealing after a commit failed; the next attempt or audit_verify will seal")


def _event_problem(event: AuditEvent, previous: AuditEvent | None) -> str:
    """Why `event` (whose predecessor in seq order is `previous`) does not hold, or ""."""
    payload = event.canonical_payload()
    if event.prev_hash:  # the chained format of the events from before the seals
        if previous is not None and not previous.prev_hash:
            return "a chained (pre-seal format) event follows a sealed-format one (row was modified)"
        if event.prev_hash != (previous.hash if previous is not None else GENESIS_HASH):
            return "prev_hash does not match the previous event's hash"
        if chain_hash(event.prev_hash, payload) != event.hash:
            return "content does not match its hash (row was modified)"
        return ""
    if not hmac.compare_digest(event_hash(payload), event.hash):
        return "content does not match its hash (row was modified)"
    return ""


def _pg_resolved_horizon(wait_s: float) -> int | None:
    """The highest seq below which no transaction can still commit an event (see the module docstring), or None
    when a transaction that may hold one is still open after `wait_s`. A sealer that cannot wait (after a commit)
    leaves its reading as a checkpoint; the next attempt of this process finds it resolved, even under a load that
    never leaves a moment without a transaction in flight."""
    global _checkpoint
    with connection.cursor() as cursor:
        cursor.execute("SELECT last_value, is_called FROM audit_event_seq")
        last_value, is_called = cursor.fetchone()
        horizon = int(last_value) if is_called else int(last_value) - 1
        cursor.execute("SELECT clock_timestamp()")
        (started,) = cursor.fetchone()

        def open_since(moment: datetime) -> int:
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND backend_type = 'client backend' AND pid <> pg_backend_pid() AND xact_start <= %s",
                [moment],
            )
            return int(cursor.fetchone()[0])

        deadline = time.monotonic() + wait_s
        while open_since(started):
            if time.monotonic() >= deadline:
                earlier, _checkpoint = _checkpoint, (horizon, started)
                if earlier is not None and earlier[0] <= horizon and not open_since(earlier[1]):
                    return earlier[0]
                return None
            time.sleep(0.02)
        return horizon


def _skipped_ranges(first: int, last: int, present: list[int]) -> list[list[int]]:
    ranges: list[list[int]] = []
    expected = first
    for seq in [*present, last + 1]:
        if seq > expected:
            ranges.append([expected, seq - 1])
        expected = seq + 1
    return ranges


def _in_ranges(seq: int, ranges: list[list[int]]) -> bool:
    return any(start <= seq <= end for start, end in ranges)


def audit_seal(*, wait_s: float = SEAL_WAIT_S, blocking: bool = True) -> int:
    """Seal every event that can be sealed now into signed batches; returns how many events were sealed.
    One sealer at a time (blocking=False: return 0 at once if another is at work); writers never wait for it."""
    sealed = 0
    with transaction.atomic():
        if _is_postgres():
            with connection.cursor() as cursor:
                if blocking:
                    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SEAL_LOCK_KEY])
                else:
                    cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [SEAL_LOCK_KEY])
                    if not cursor.fetchone()[0]:
                        return 0
            horizon = _pg_resolved_horizon(wait_s)
        else:
            horizon = None  # SQLite: seqs are dense, so a gap is a deletion: never seal over one
        last = AuditSeal.objects.order_by("-number").first()
        while True:
            start = last.last_seq + 1 if last is not None else 1
            if horizon is not None and horizon < start:
                break
            previous = AuditEvent.objects.filter(seq__lt=start).order_by("-seq").first()
            candidates = AuditEvent.objects.filter(seq__gte=start).order_by("seq")
            if horizon is not None:
                candidates = candidates.filter(seq__lte=horizon)
            batch: list[AuditEvent] = []
            stop_before: int | None = None
            expected = start
            for event in candidates[:MAX_SEAL_EVENTS]:
                if horizon is None and event.seq != expected:
                    stop_before = expected  # an unresolved gap: only the gap-free prefix is sealed
                    break
                if _event_problem(event, previous):
                    stop_before = event.seq  # never vouch for a bad row; audit_verify names it
                    break
                batch.append(event)
                previous, expected = event, event.seq + 1
            if stop_before is not None:
                end = stop_before - 1
            elif len(batch) == MAX_SEAL_EVENTS or horizon is None:
                end = batch[-1].seq if batch else start - 1
            else:
                end = horizon
            if end < start:
                break
            last = _write_seal(last, start, end, batch)
            sealed += len(batch)
            if stop_before is not None or (horizon is None and len(batch) < MAX_SEAL_EVENTS):
                break
    return sealed


def _write_seal(last: AuditSeal | None, first_seq: int, last_seq: int, events: list[AuditEvent]) -> AuditSeal:
    seal = AuditSeal(
        number=last.number + 1 if last is not None else 1,
        created_at=timezone.now(),
        first_seq=first_seq,
        last_seq=last_seq,
        count=len(events),
        skipped=_skipped_ranges(first_seq, last_seq, [e.seq for e in events]),
        root=merkle_root([_leaf(e) for e in events]),
        prev_hash=last.hash if last is not None else GENESIS_HASH,
    )
    seal.hash = seal_hash(seal.prev_hash, seal.canonical_body())
    seal.signature = seal_signature(seal.hash)
    seal.save()
    logger.info("audit seal %s: #%s..#%s, %s events, hash %s", seal.number, first_seq, last_seq, seal.count, seal.hash)
    return seal


def audit_seal_is_known(number: int, hash_: str) -> bool:
    """Whether seal `number` still exists with this hash (a seal recorded earlier, from the log or audit_verify:
    the check against a truncated log)."""
    return AuditSeal.objects.filter(number=number, hash=hash_).exists()


def audit_newest_seal() -> AuditSeal | None:
    return AuditSeal.objects.order_by("-number").first()


@dataclass
class ChainReport:
    ok: bool
    checked: int
    broken_seq: int | None = None
    broken_id: int | None = None
    reason: str = ""
    sealed: int = 0
    seals: int = 0


class _Broken(Exception):
    def __init__(self, seq: int | None, event_id: int | None, reason: str) -> None:
        super().__init__(reason)
        self.seq, self.event_id, self.reason = seq, event_id, reason


class _Peekable:
    def __init__(self, iterator: Iterator[AuditEvent]) -> None:
        self._it, self._next = iterator, next(iterator, None)

    def peek(self) -> AuditEvent | None:
        return self._next

    def pop(self) -> AuditEvent:
        current = self._next
        assert current is not None
        self._next = next(self._it, None)
        return current


def audit_chain_verify(batch_size: int = 2000, *, seal: bool = True, wait_s: float = SEAL_WAIT_S) -> ChainReport:
    """Seal what can be sealed (unless seal=False), then check every seal and every event in order and report the
    first thing that does not hold: a forged, altered or missing seal, an event altered, deleted, inserted or
    moved, an unsealed event whose content does not match its hash."""
    if seal:
        audit_seal(wait_s=wait_s)
    state = {"checked": 0, "sealed": 0, "seals": 0}
    try:
        _verify(batch_size, state)
    except _Broken as broken:
        return ChainReport(False, state["checked"], broken.seq, broken.event_id, broken.reason, state["sealed"])
    return ChainReport(True, state["checked"], sealed=state["sealed"], seals=state["seals"])


def _verify(batch_size: int, state: dict[str, int]) -> None:
    events = _Peekable(AuditEvent.objects.order_by("seq").iterator(chunk_size=batch_size))
    previous: AuditEvent | None = None
    prev_seal_hash, next_seq, number = GENESIS_HASH, 1, 1
    for seal in AuditSeal.objects.order_by("number").iterator(chunk_size=batch_size):
        where = f"seal {seal.number} (#{seal.first_seq}..#{seal.last_seq})"
        if seal.number != number:
            raise _Broken(next_seq, None, f"seal {number} is missing (seals deleted?)")
        if seal.prev_hash != prev_seal_hash or seal.first_seq != next_seq or seal.last_seq < seal.first_seq:
            raise _Broken(seal.first_seq, None, f"{where} does not follow the previous seal")
        if seal_hash(seal.prev_hash, seal.canonical_body()) != seal.hash or not hmac.compare_digest(
            seal_signature(seal.hash), seal.signature
        ):
            raise _Broken(seal.first_seq, None, f"{where} does not match its signature (seal forged or modified)")
        skipped = [list(r) for r in seal.skipped]
        expected, leaves = seal.first_seq, []
        while (event := events.peek()) is not None and event.seq <= seal.last_seq:
            while _in_ranges(expected, skipped):
                expected += 1
            if event.seq < expected:
                raise _Broken(event.seq, event.id, f"event #{event.seq} was inserted into {where} (not sealed)")
            if event.seq > expected:
                raise _Broken(expected, None, f"sequence gap: expected #{expected}, found #{event.seq} (rows deleted?)")
            _check_event(events.pop(), previous, state)
            previous, expected = event, expected + 1
            leaves.append(_leaf(event))
        while _in_ranges(expected, skipped):
            expected += 1
        if expected <= seal.last_seq:
            raise _Broken(expected, None, f"event #{expected} of {where} is missing (tail of the batch deleted?)")
        if len(leaves) != seal.count or merkle_root(leaves) != seal.root:
            raise _Broken(seal.first_seq, None, f"{where}: its events do not match its Merkle root")
        state["sealed"] += len(leaves)
        state["seals"] += 1
        prev_seal_hash, next_seq, number = seal.hash, seal.last_seq + 1, number + 1
    dense = not _is_postgres()  # SQLite: no rollback leaves a gap, so one is a deletion
    expected = next_seq
    while (event := events.peek()) is not None:
        if event.seq < expected:
            raise _Broken(event.seq, event.id, f"event #{event.seq} lies before the first unsealed seq")
        if dense and event.seq != expected:
            raise _Broken(expected, None, f"sequence gap: expected #{expected}, found #{event.seq} (rows deleted?)")
        _check_event(events.pop(), previous, state)
        previous, expected = event, event.seq + 1
    _check_head(previous, state)


def _check_event(event: AuditEvent, previous: AuditEvent | None, state: dict[str, int]) -> None:
    problem = _event_problem(event, previous)
    if problem:
        raise _Broken(event.seq, event.id, problem)
    state["checked"] += 1


def _check_head(last: AuditEvent | None, state: dict[str, int]) -> None:
    """SQLite: the allocator's last seq is the last event's. PostgreSQL: the chained events from before the seals
    must still end where the old head said they did."""
    head = AuditChainHead.objects.filter(id=1).first()
    if head is None or head.last_seq == 0:
        return
    if not _is_postgres():
        if last is None or last.seq != head.last_seq:
            raise _Broken(
                (last.seq if last is not None else 0) + 1,
                None,
                f"chain head says #{head.last_seq} but the last event is #{last.seq if last else 0} (tail deleted?)",
            )
        return
    anchor = AuditEvent.objects.filter(seq=head.last_seq).first()
    if anchor is None or anchor.hash != head.last_hash:
        raise _Broken(
            head.last_seq, None, f"the chained events end at #{head.last_seq}, which is missing (tail deleted?)"
        )
