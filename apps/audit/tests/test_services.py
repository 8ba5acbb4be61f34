"""The audit log: append-only, lock-free appends with keyed content hashes, sealed in signed Merkle batches;
tampering, deletion, insertion and reordering are named by audit_verify, rolled-back gaps are not."""

import threading

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, connections, transaction

from apps.audit import services
from apps.audit.models import GENESIS_HASH, AppendOnlyError, AuditChainHead, AuditEvent, AuditSeal
from apps.audit.services import (
    _allocate_seqs,
    audit_chain_verify,
    audit_record,
    audit_record_many,
    audit_seal,
    chain_hash,
    event_hash,
    merkle_root,
)
from apps.core.testing import count_queries

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the lock-free sequence and the rollback gaps are PostgreSQL's"
)


def _tamper(sql, params):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _five(alice):
    return [audit_record(actor=alice, verb=f"v{i}", target=("t", i), after={"i": i}) for i in range(5)]


@pytest.mark.django_db
def test_events_carry_their_own_keyed_hash(alice):
    first = audit_record(actor=alice, verb="x.one", target=("thing", 1), after={"a": 1})
    second = audit_record(actor=None, verb="x.two", target=alice, before={"b": [1, 2]})
    assert first.prev_hash == second.prev_hash == ""
    assert second.seq > first.seq
    assert second.hash == event_hash(second.canonical_payload()) != first.hash
    assert second.target_type == "accounts.user" and second.target_id == str(alice.pk)
    assert first.actor_username == "alice" and second.actor_username == ""
    report = audit_chain_verify()
    assert report.ok and report.checked == AuditEvent.objects.count() == report.sealed
    seal = AuditSeal.objects.get()
    assert seal.count == 2 and seal.last_seq == second.seq and seal.first_seq == 1
    assert seal.root == merkle_root([f"{e.seq}:{e.hash}".encode() for e in (first, second)])


@pytest.mark.django_db
def test_many_events_are_appended_in_order_with_two_queries_and_no_lock(alice):
    first = audit_record(actor=alice, verb="x.one", target=("thing", 1))
    with count_queries() as queries:
        events = audit_record_many(
            actor=alice, verb="x.many", events=[(("thing", i), None, {"i": i}) for i in range(2, 12)]
        )
    sql = " ".join(q["sql"] for q in queries).upper()
    if connection.vendor == "postgresql":
        assert len(queries) == 2 and "FOR UPDATE" not in sql  # the seqs from the sequence, one insert
    else:
        assert len(queries) == 3  # SQLite: the head row allocates: read, insert, move
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == 10 and seqs[0] > first.seq
    stored = list(AuditEvent.objects.filter(verb="x.many").order_by("seq"))
    assert [(e.seq, e.hash, e.after) for e in stored] == [
        (e.seq, e.hash, {"i": i}) for i, e in enumerate(events, start=2)
    ]
    assert audit_record_many(actor=alice, verb="x.none", events=[]) == []
    report = audit_chain_verify()
    assert report.ok and report.checked == AuditEvent.objects.count()


@pytest.mark.django_db
def test_append_only_in_the_app(alice):
    event = audit_record(actor=alice, verb="x", target=("t", 1))
    event.verb = "changed"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(verb="y")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()
    audit_seal()
    seal = AuditSeal.objects.get()
    with pytest.raises(AppendOnlyError):
        seal.save()
    with pytest.raises(AppendOnlyError):
        seal.delete()
    with pytest.raises(AppendOnlyError):
        AuditSeal.objects.update(root="0")
    with pytest.raises(AppendOnlyError):
        AuditSeal.objects.all().delete()


@pytest.mark.django_db
def test_request_id_is_recorded(client_for, alice):
    client = client_for(alice)
    resp = client.post("/api/v1/auth/tokens/", {"name": "x"}, format="json", HTTP_X_REQUEST_ID="req-42")
    # a token may not mint tokens, so use the token revoke path, which is audited
    assert resp.status_code == 403
    token_id = client.get("/api/v1/auth/tokens/").json()["results"][0]["id"]
    client.delete(f"/api/v1/auth/tokens/{token_id}/", HTTP_X_REQUEST_ID="req-43")
    assert AuditEvent.objects.get(verb="token.revoke").request_id == "req-43"


@pytest.mark.django_db
def test_tampered_unsealed_event_is_named_and_never_sealed(alice):
    events = _five(alice)
    _tamper("UPDATE audit_auditevent SET after = %s WHERE id = %s", ['{"i": 99}', events[2].pk])
    report = audit_chain_verify()
    assert not report.ok and report.broken_seq == events[2].seq and report.broken_id == events[2].pk
    assert "modified" in report.reason
    assert AuditSeal.objects.get().last_seq == events[2].seq - 1  # the sealer stopped before the bad row
    with pytest.raises(CommandError, match=f"#{events[2].seq}"):
        call_command("audit_verify")


@pytest.mark.django_db
def test_tampered_sealed_event_is_named_even_with_a_recomputed_unkeyed_hash(alice):
    events = _five(alice)
    assert audit_seal() == 5
    _tamper("UPDATE audit_auditevent SET verb = %s WHERE id = %s", ["forged", events[1].pk])
    forged = AuditEvent.objects.get(pk=events[1].pk)
    _tamper(
        "UPDATE audit_auditevent SET hash = %s, prev_hash = %s WHERE id = %s",
        [chain_hash(events[0].hash, forged.canonical_payload()), events[0].hash, events[1].pk],
    )
    report = audit_chain_verify()
    assert not report.ok and report.broken_seq == events[1].seq


@pytest.mark.django_db
def test_deleted_sealed_event_is_detected(alice):
    events = [audit_record(actor=alice, verb=f"v{i}", target=("t", i)) for i in range(4)]
    audit_seal()
    _tamper("DELETE FROM audit_auditevent WHERE id = %s", [events[1].pk])
    report = audit_chain_verify()
    assert not report.ok and report.broken_seq == events[1].seq and "gap" in report.reason


@pytest.mark.django_db
def test_deleted_tail_is_detected(alice):
    events = [audit_record(actor=alice, verb=f"v{i}", target=("t", i)) for i in range(3)]
    audit_seal()
    _tamper("DELETE FROM audit_auditevent WHERE id = %s", [events[-1].pk])
    report = audit_chain_verify()
    assert not report.ok and report.broken_seq == events[-1].seq and "tail" in report.reason


@pytest.mark.django_db
@pytest.mark.parametrize("sealed", [True, False])
def test_reordered_events_are_detected(alice, sealed):
    events = _five(alice)
    if sealed:
        audit_seal()
    a, b = events[1], events[3]
    _tamper("UPDATE audit_auditevent SET seq = -1 WHERE id = %s", [a.pk])
    _tamper("UPDATE audit_auditevent SET seq = %s WHERE id = %s", [a.seq, b.pk])
    _tamper("UPDATE audit_auditevent SET seq = %s WHERE id = %s", [b.seq, a.pk])
    report = audit_chain_verify()
    assert not report.ok and report.broken_seq == a.seq and "modified" in report.reason


@postgres_only
@pytest.mark.django_db
def test_an_event_inserted_into_a_sealed_range_is_detected(alice):
    first = audit_record(actor=alice, verb="v", target=("t", 1))
    with pytest.raises(RuntimeError), transaction.atomic():
        rolled_back = audit_record(actor=alice, verb="gone", target=("t", 2))
        raise RuntimeError("roll back")
    last = audit_record(actor=alice, verb="v", target=("t", 3))
    audit_seal()
    assert [rolled_back.seq, rolled_back.seq] in AuditSeal.objects.get().skipped
    # even with a valid keyed hash (an insider with the key), the seal does not list it
    with transaction.atomic():
        audit_record_many(actor=alice, verb="late", events=[(("t", 9), None, None)])
    late = AuditEvent.objects.get(verb="late")
    _tamper("UPDATE audit_auditevent SET seq = %s WHERE id = %s", [rolled_back.seq, late.pk])
    late.seq = rolled_back.seq
    _tamper("UPDATE audit_auditevent SET hash = %s WHERE id = %s", [event_hash(late.canonical_payload()), late.pk])
    report = audit_chain_verify(seal=False)
    assert not report.ok and report.broken_seq == rolled_back.seq and "inserted" in report.reason
    assert first.seq < rolled_back.seq < last.seq


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's dense seqs")
@pytest.mark.django_db
def test_sqlite_dense_seqs_name_an_unsealed_deletion(alice):
    """On SQLite a rollback also rolls the head row back, so seqs are dense and any gap is a deletion."""
    events = _five(alice)
    _tamper("DELETE FROM audit_auditevent WHERE id = %s", [events[2].pk])
    report = audit_chain_verify()
    assert not report.ok and report.broken_seq == events[2].seq and "gap" in report.reason
    assert AuditSeal.objects.get().last_seq == events[1].seq  # nothing is sealed over the gap
    _tamper("DELETE FROM audit_auditevent WHERE id = %s", [events[4].pk])
    _tamper("DELETE FROM audit_auditevent WHERE id = %s", [events[3].pk])
    report = audit_chain_verify()
    assert not report.ok and report.broken_seq == events[2].seq and "tail" in report.reason


@pytest.mark.django_db
def test_a_forged_or_deleted_seal_is_detected(alice):
    _five(alice)
    audit_seal()
    audit_record(actor=alice, verb="more", target=("t", 9))
    audit_seal()
    seal = AuditSeal.objects.order_by("number").first()
    _tamper("UPDATE audit_auditseal SET count = count + 1 WHERE id = %s", [seal.pk])
    report = audit_chain_verify(seal=False)
    assert not report.ok and "signature" in report.reason
    _tamper("DELETE FROM audit_auditseal WHERE id = %s", [seal.pk])
    report = audit_chain_verify(seal=False)
    assert not report.ok and "seal 1 is missing" in report.reason


@postgres_only
@pytest.mark.django_db
def test_rolled_back_gaps_are_not_false_alarms(alice):
    kept = []
    for i in range(6):
        with transaction.atomic():
            kept.append(audit_record(actor=alice, verb="kept", target=("t", i)))
        if i % 2:
            with pytest.raises(RuntimeError), transaction.atomic():
                audit_record_many(actor=alice, verb="gone", events=[(("t", i), None, None)] * 3)
                raise RuntimeError("roll back")
    report = audit_chain_verify()
    assert report.ok and report.checked == 6 and report.sealed == 6
    skipped = [seq for seal in AuditSeal.objects.all() for start, end in seal.skipped for seq in range(start, end + 1)]
    assert len([s for s in skipped if s > kept[0].seq]) == 9
    # a rollback after the last seal: still no alarm, and it is sealed as skipped next time
    with pytest.raises(RuntimeError), transaction.atomic():
        audit_record(actor=alice, verb="gone", target=("t", 99))
        raise RuntimeError("roll back")
    assert audit_chain_verify().ok


@postgres_only
@pytest.mark.django_db
def test_chained_events_from_before_the_seals_still_verify(alice):
    """What migration 0002 leaves: hash-chained events, the head row as their anchor, then sealed-format ones."""
    seqs = _allocate_seqs(3)
    prev, legacy = GENESIS_HASH, []
    for seq in seqs:
        event = AuditEvent(seq=seq, created_at=alice.date_joined, verb="old", target_type="t", target_id=str(seq))
        event.prev_hash, event.hash = prev, chain_hash(prev, event.canonical_payload())
        prev = event.hash
        legacy.append(event)
    AuditEvent.objects.bulk_create(legacy)
    AuditChainHead.objects.create(id=1, last_seq=seqs[-1], last_hash=prev)
    audit_record(actor=alice, verb="new", target=("t", 1))
    report = audit_chain_verify(seal=False)
    assert report.ok and report.checked == 4 and report.sealed == 0
    _tamper("DELETE FROM audit_auditevent WHERE seq = %s", [seqs[-1]])  # the unsealed legacy tail
    report = audit_chain_verify()
    assert not report.ok and report.broken_seq == seqs[-1] and "tail" in report.reason


@postgres_only
@pytest.mark.django_db
def test_sealed_chained_events_detect_tampering(alice):
    seqs = _allocate_seqs(2)
    prev = GENESIS_HASH
    for seq in seqs:
        event = AuditEvent(seq=seq, created_at=alice.date_joined, verb="old", target_type="t", target_id=str(seq))
        event.prev_hash, event.hash = prev, chain_hash(prev, event.canonical_payload())
        event.save()
        prev = event.hash
    assert audit_chain_verify().ok and AuditSeal.objects.get().count == 2
    _tamper("UPDATE audit_auditevent SET target_id = 'x' WHERE seq = %s", [seqs[0]])
    report = audit_chain_verify()
    assert not report.ok and report.broken_seq == seqs[0] and "modified" in report.reason


@pytest.mark.django_db
def test_a_truncated_log_is_caught_against_a_seal_seen_before(alice, capsys):
    events = _five(alice)
    call_command("audit_verify")
    out = capsys.readouterr().out
    witness = out.split("--expect-seal ")[1].split()[0]
    seal = AuditSeal.objects.get()
    assert witness == f"{seal.number}:{seal.hash}"
    call_command("audit_verify", "--expect-seal", witness)
    # whoever deletes the newest events and their seal leaves a log that verifies on its own, but not the witness
    _tamper("DELETE FROM audit_auditevent WHERE id = %s", [events[-1].pk])
    _tamper("DELETE FROM audit_auditseal WHERE id = %s", [seal.pk])
    if connection.vendor == "postgresql":
        assert audit_chain_verify().ok  # the log alone cannot tell a truncated end
        caught = "seal 1 with hash .* is gone"
    else:
        caught = "tail"  # SQLite's allocator row still knows the last seq
    with pytest.raises(CommandError, match=caught):
        call_command("audit_verify", "--expect-seal", witness)
    with pytest.raises(CommandError, match="N:HASH"):
        call_command("audit_verify", "--expect-seal", "one:abc")


@pytest.mark.django_db
def test_audit_verify_command_ok(alice, capsys):
    audit_record(actor=alice, verb="v", target=("t", 1))
    call_command("audit_verify")
    assert "audit log OK: 1 events verified" in capsys.readouterr().out
    call_command("audit_seal")
    assert "sealed 0 events" in capsys.readouterr().out


def _writer(n: int, barrier: threading.Barrier, errors: list[BaseException], rollback_every: int = 0) -> None:
    try:
        barrier.wait()
        for i in range(10):
            try:
                with transaction.atomic():
                    audit_record(actor=None, verb="race", target=("t", f"{n}-{i}"), after={"n": n, "i": i})
                    if rollback_every and i % rollback_every == 0:
                        raise RuntimeError("roll back")
            except RuntimeError:
                pass
    except BaseException as exc:  # noqa: BLE001
        errors.append(exc)
    finally:
        connections.close_all()


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_and_a_sealer_all_appear_and_verify():
    """Threads, each in its own transactions and connection, append at once (some roll back) while a sealer runs."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(9)
    threads = [threading.Thread(target=_writer, args=(n, barrier, errors, 3 if n % 2 else 0)) for n in range(8)]

    def sealer() -> None:
        try:
            barrier.wait()
            for _ in range(5):
                audit_seal(wait_s=0.5)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connections.close_all()

    threads.append(threading.Thread(target=sealer))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    kept = 4 * 10 + 4 * 6  # the odd writers roll back i = 0, 3, 6, 9
    seqs = list(AuditEvent.objects.filter(verb="race").values_list("seq", flat=True))
    assert len(seqs) == kept and len(set(seqs)) == kept
    report = audit_chain_verify()
    assert report.ok, report
    assert report.checked == report.sealed == kept


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_an_open_transaction_holds_the_seal_back_instead_of_being_sealed_over(settings):
    settings.MC_AUDIT_SEAL_EVERY_S = 0  # this test seals by hand
    inserted, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def slow_writer() -> None:
        try:
            with transaction.atomic():
                audit_record(actor=None, verb="slow", target=("t", "slow"))
                inserted.set()
                release.wait(30)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connections.close_all()

    before = audit_record(actor=None, verb="fast", target=("t", 0))
    assert audit_seal() == 1
    thread = threading.Thread(target=slow_writer)
    thread.start()
    assert inserted.wait(30)
    after = audit_record(actor=None, verb="fast", target=("t", 1))
    # Past the wait only a gap-free prefix may be sealed, and the slow seq (which may still commit) comes first.
    assert audit_seal(wait_s=0.1) == 0
    assert AuditSeal.objects.get().last_seq == before.seq < after.seq
    release.set()
    thread.join()
    assert not errors, errors
    report = audit_chain_verify()
    assert report.ok and report.checked == report.sealed == 3


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_migration_0002_keeps_the_chained_events_verifiable(settings):
    settings.MC_AUDIT_SEAL_EVERY_S = 0
    """Events chained by the old code, then the migration: they verify, get sealed, and new events follow them."""
    from django.db.migrations.executor import MigrationExecutor
    from django.utils import timezone

    executor = MigrationExecutor(connection)
    executor.migrate([("audit", "0001_initial")])
    try:
        prev, legacy = GENESIS_HASH, []
        for seq in range(1, 5):  # what the old audit_record wrote: seq from the head, hash chained to the previous
            event = AuditEvent(
                seq=seq, created_at=timezone.now(), verb="old", target_type="t", target_id=str(seq), after={"n": seq}
            )
            event.prev_hash, event.hash = prev, chain_hash(prev, event.canonical_payload())
            prev = event.hash
            legacy.append(event)
        AuditEvent.objects.bulk_create(legacy)
        AuditChainHead.objects.create(id=1, last_seq=4, last_hash=prev)
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
    new = audit_record(actor=None, verb="new", target=("t", 5))
    assert new.seq == 5 and new.prev_hash == ""
    report = audit_chain_verify()
    assert report.ok and report.checked == report.sealed == 5, report
    _tamper("UPDATE audit_auditevent SET after = '{\"n\": 9}' WHERE seq = 2", [])
    report = audit_chain_verify()
    assert not report.ok and report.broken_seq == 2 and "modified" in report.reason


def _open_writer(name: str, errors: list[BaseException]) -> tuple[threading.Event, threading.Thread]:
    """A thread that appends an event in a transaction it keeps open until the returned event is set."""
    inserted, release = threading.Event(), threading.Event()

    def run() -> None:
        try:
            with transaction.atomic():
                audit_record(actor=None, verb=name, target=("t", name))
                inserted.set()
                release.wait(30)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    assert inserted.wait(30)
    return release, thread


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_sealer_that_cannot_wait_resolves_its_reading_on_its_next_attempt(settings, monkeypatch):
    """Under a load where some transaction is always open, the gap of a still-open one is sealed a turn later."""
    settings.MC_AUDIT_SEAL_EVERY_S = 0
    monkeypatch.setattr(services, "_checkpoint", None)
    errors: list[BaseException] = []
    release_a, thread_a = _open_writer("a", errors)
    audit_record(actor=None, verb="fast", target=("t", 1))
    assert audit_seal(wait_s=0) == 0  # a's seq comes first and may still commit: the reading is kept
    release_b, thread_b = _open_writer("b", errors)
    release_a.set()
    thread_a.join()
    assert audit_seal(wait_s=0) == 2  # b is open, but everything up to the kept reading is final: a and fast
    assert not AuditEvent.objects.filter(verb="b").exists()  # not committed yet
    release_b.set()
    thread_b.join()
    assert not errors, errors
    report = audit_chain_verify()
    assert report.ok and report.checked == report.sealed == 3


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_commit_seals_at_most_every_few_seconds(settings, monkeypatch):
    settings.MC_AUDIT_SEAL_EVERY_S = 3600
    monkeypatch.setattr(services, "_next_seal_at", 0.0)
    first = audit_record(actor=None, verb="x", target=("t", 1))  # autocommit: sealed right after its commit
    assert AuditSeal.objects.get().last_seq == first.seq
    audit_record(actor=None, verb="x", target=("t", 2))  # within the interval: not sealed
    assert AuditSeal.objects.count() == 1
    report = audit_chain_verify()
    assert report.ok and report.checked == 2 and report.seals == 2
