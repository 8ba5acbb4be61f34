"""Service rules of resumable uploads (offsets, limits, the running sha256 across processes, completion,
expiry) and of download counting (no write per download; Redis and in-process paths)."""

from __future__ import annotations

import hashlib
import io
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from apps.registry.models import Artifact, Variant
from apps.registry.services import revision_submit
from apps.registry.uploads import PayloadTooLarge
from apps.transfers import downloads, partials, services
from apps.transfers.choices import UploadStatus
from apps.transfers.models import UploadSession

from .conftest import safetensors_bytes

pytestmark = pytest.mark.django_db


def _open(world, content: bytes, path: str = "new.safetensors", **kw):  # type: ignore[no-untyped-def]
    return services.upload_create(
        actor=world["users"]["owner"],
        variant="alice/draft",
        path=path,
        size_bytes=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        **kw,
    )


def _append(world, session, chunk: bytes, offset: int, length: int | None = None):  # type: ignore[no-untyped-def]
    return services.upload_append(
        session=session,
        actor=world["users"]["owner"],
        offset=offset,
        stream=io.BytesIO(chunk),
        length=len(chunk) if length is None else length,
    )


def _send(world, session, content: bytes, sizes: list[int]):  # type: ignore[no-untyped-def]
    offset = 0
    for size in sizes:
        session = _append(world, session, content[offset : offset + size], offset)
        offset += size
    return session


# --- Declaring ----------------------------------------------------------------------------------------------


def test_create_checks_the_declaration_before_any_byte(files_world):
    with pytest.raises(ValidationFailed) as bad:
        services.upload_create(
            actor=files_world["users"]["owner"],
            variant="alice/draft",
            path="a/../b.json",
            size_bytes=-5,
            sha256="nothex",
        )
    assert set(bad.value.errors) == {"path", "sha256", "size_bytes"}
    with pytest.raises(NotFound):
        services.upload_create(
            actor=files_world["users"]["other"], variant="alice/draft", path="x.json", size_bytes=1, sha256="a" * 64
        )
    with pytest.raises(PermissionDenied):
        services.upload_create(
            actor=files_world["users"]["reviewer"], variant="alice/draft", path="x.json", size_bytes=1, sha256="a" * 64
        )


def test_create_refuses_a_revision_that_is_no_longer_a_draft(files_world, monkeypatch):
    monkeypatch.setattr("apps.reviews.gate.checklist_gate_unmet", lambda revision: [], raising=False)
    draft = files_world["draft"]
    revision_submit(revision=draft.current_revision, actor=files_world["users"]["owner"])
    with pytest.raises(Conflict):
        _open(files_world, b"x")


def test_create_opens_the_partial_file_and_an_expiry(files_world, settings):
    session = _open(files_world, b"abc")
    assert session.part_path.exists() and session.part_path.parent == settings.MC_UPLOAD_TEMP_DIR
    assert session.offset == 0 and session.status == UploadStatus.OPEN
    assert session.expires_at > timezone.now() + timedelta(seconds=settings.MC_UPLOAD_SESSION_TTL_S - 60)
    assert session.revision == files_world["draft"].current_revision


# --- Appending ----------------------------------------------------------------------------------------------


def test_chunks_must_come_at_the_offset_and_within_the_declared_size(files_world):
    content = safetensors_bytes(1000)
    session = _open(files_world, content)
    with pytest.raises(services.OffsetMismatch) as wrong:
        _append(files_world, session, content[:10], 10)
    assert wrong.value.extra["offset"] == 0
    with pytest.raises(PayloadTooLarge):
        _append(files_world, session, content + b"!", 0)
    with pytest.raises(services.LengthRequired):
        services.upload_append(
            session=session, actor=files_world["users"]["owner"], offset=0, stream=io.BytesIO(content), length=None
        )
    with pytest.raises(ValidationFailed):
        services.upload_append(
            session=session,
            actor=files_world["users"]["owner"],
            offset=None,
            stream=io.BytesIO(content),
            length=len(content),
        )
    session.refresh_from_db()
    assert session.offset == 0 and session.part_path.stat().st_size == 0


def test_a_broken_chunk_keeps_what_arrived(files_world):
    content = safetensors_bytes(3000)
    session = _open(files_world, content)
    session = _append(files_world, session, content[:700], 0, length=2000)  # the stream ends early
    assert session.offset == 700 and session.part_path.stat().st_size == 700
    session = _append(files_world, session, content[700:], 700)
    artifact, created = services.upload_complete(session=session, actor=files_world["users"]["owner"])
    assert created and artifact.sha256 == hashlib.sha256(content).hexdigest()


def test_bytes_past_the_recorded_offset_are_dropped_by_the_next_chunk(files_world):
    """A write whose offset was never recorded (the request died before its UPDATE) leaves bytes behind."""
    content = safetensors_bytes(2000)
    session = _open(files_world, content)
    session = _append(files_world, session, content[:500], 0)
    with session.part_path.open("ab") as fh:
        fh.write(b"garbage that was never acknowledged")
    session = _append(files_world, session, content[500:], 500)
    artifact, _ = services.upload_complete(session=session, actor=files_world["users"]["owner"])
    assert artifact.sha256 == hashlib.sha256(content).hexdigest()


def test_a_second_concurrent_writer_is_refused(files_world):
    content = b"y" * 100
    session = _open(files_world, content)
    with partials.locked(session.part_path), pytest.raises(partials.Busy):
        _append(files_world, session, content, 0)


# --- The running sha256 ----------------------------------------------------------------------------------


def test_the_hash_is_taken_as_chunks_arrive(files_world, monkeypatch):
    content = safetensors_bytes(5000)
    session = _send(files_world, _open(files_world, content), content, [1000, 1000, 3000 + len(content) - 5000])
    reads = []
    real = partials.hasher_at

    def spy(session_id, fh, offset):  # type: ignore[no-untyped-def]
        before = fh.tell()
        hasher = real(session_id, fh, offset)
        reads.append(fh.tell() - before)
        return hasher

    monkeypatch.setattr(partials, "hasher_at", spy)
    artifact, _ = services.upload_complete(session=session, actor=files_world["users"]["owner"])
    assert artifact.sha256 == hashlib.sha256(content).hexdigest()
    assert reads == [0]  # completion read nothing back: the digest was already there


def test_another_process_catches_up_from_the_partial_file(files_world):
    """What a second web process sees: no running hash for the session (forgotten here), so it reads back
    the bytes it missed once, then goes on hashing chunks as they arrive."""
    content = safetensors_bytes(6000)
    session = _send(files_world, _open(files_world, content), content, [2000])
    partials.forget(str(session.pk))  # "another process" takes the next chunk
    session = _send_from(files_world, session, content, 2000, [2000])
    partials.forget(str(session.pk))  # and a third one completes (e.g. after a restart)
    session = _send_from(files_world, session, content, 4000, [len(content) - 4000])
    partials.forget(str(session.pk))
    artifact, _ = services.upload_complete(session=session, actor=files_world["users"]["owner"])
    assert artifact.sha256 == hashlib.sha256(content).hexdigest()


def _send_from(world, session, content: bytes, offset: int, sizes: list[int]):  # type: ignore[no-untyped-def]
    for size in sizes:
        session = _append(world, session, content[offset : offset + size], offset)
        offset += size
    return session


def test_a_hash_ahead_of_the_offset_is_not_used(files_world):
    content = safetensors_bytes(1000)
    session = _open(files_world, content)
    partials.remember(str(session.pk), 999, hashlib.sha256(b"stale"))
    session = _append(files_world, session, content, 0)
    artifact, _ = services.upload_complete(session=session, actor=files_world["users"]["owner"])
    assert artifact.sha256 == hashlib.sha256(content).hexdigest()


# --- Completing -------------------------------------------------------------------------------------------


def test_completion_makes_an_artifact_through_the_registry(files_world):
    content = safetensors_bytes(10_000)
    session = _send(
        files_world,
        _open(files_world, content, path="weights/part-1.safetensors"),
        content,
        [4096, len(content) - 4096],
    )
    artifact, created = services.upload_complete(session=session, actor=files_world["users"]["owner"])
    assert created and artifact.path == "weights/part-1.safetensors" and artifact.format == "safetensors"
    assert artifact.size_bytes == len(content) and artifact.file
    with artifact.file.open("rb") as fh:
        assert fh.read() == content
    assert not session.part_path.exists()
    assert AuditEvent.objects.filter(verb="artifact.add", after__path="weights/part-1.safetensors").exists()
    session.refresh_from_db()
    assert session.status == UploadStatus.COMPLETED and session.artifact == artifact
    again, created_again = services.upload_complete(session=session, actor=files_world["users"]["owner"])
    assert again == artifact and not created_again
    with pytest.raises(Conflict):
        _append(files_world, session, b"x", session.offset)


def test_an_incomplete_upload_cannot_complete(files_world):
    content = safetensors_bytes(2000)
    session = _send(files_world, _open(files_world, content), content, [1000])
    with pytest.raises(Conflict) as incomplete:
        services.upload_complete(session=session, actor=files_world["users"]["owner"])
    assert incomplete.value.extra == {"offset": 1000, "size_bytes": len(content)}
    session.refresh_from_db()
    assert session.status == UploadStatus.OPEN and session.part_path.stat().st_size == 1000


def test_a_wrong_sha256_discards_the_upload(files_world):
    content = safetensors_bytes(2000)
    session = services.upload_create(
        actor=files_world["users"]["owner"],
        variant="alice/draft",
        path="w.safetensors",
        size_bytes=len(content),
        sha256="f" * 64,
    )
    session = _send(files_world, session, content, [len(content)])
    with pytest.raises(ValidationFailed) as wrong:
        services.upload_complete(session=session, actor=files_world["users"]["owner"])
    assert "sha256" in wrong.value.errors
    session.refresh_from_db()
    assert session.status == UploadStatus.FAILED and "sha256" in session.failure
    assert not session.part_path.exists() and not Artifact.objects.filter(path="w.safetensors").exists()


def test_a_path_taken_meanwhile_keeps_the_session_open(files_world):
    from .conftest import store

    content = safetensors_bytes(500)
    session = _send(files_world, _open(files_world, content), content, [len(content)])
    store(
        files_world["draft"].current_revision, files_world["users"]["owner"], "new.safetensors", safetensors_bytes(10)
    )
    with pytest.raises(Conflict):
        services.upload_complete(session=session, actor=files_world["users"]["owner"])
    session.refresh_from_db()
    assert session.status == UploadStatus.OPEN and session.part_path.exists()


# --- Expiry -----------------------------------------------------------------------------------------------


def test_expired_sessions_are_closed_and_their_bytes_removed(files_world):
    content = safetensors_bytes(1000)
    stale = _send(files_world, _open(files_world, content), content, [500])
    fresh = _open(files_world, content, path="fresh.safetensors")
    UploadSession.objects.filter(pk=stale.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert services.uploads_expire() == 1
    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert stale.status == UploadStatus.EXPIRED and not stale.part_path.exists()
    assert fresh.status == UploadStatus.OPEN and fresh.part_path.exists()
    with pytest.raises(services.Gone):
        _append(files_world, stale, content[500:], 500)
    # Closed sessions are forgotten a TTL after their last change.
    later = timezone.now() + timedelta(days=3)
    services.uploads_expire(now=later)
    assert not UploadSession.objects.filter(pk=stale.pk).exists()


def test_a_session_past_its_expiry_is_gone_even_before_the_beat_runs(files_world):
    session = _open(files_world, b"abc")
    UploadSession.objects.filter(pk=session.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    session.refresh_from_db()
    with pytest.raises(services.Gone):
        _append(files_world, session, b"abc", 0)
    with pytest.raises(services.Gone):
        services.upload_complete(session=session, actor=files_world["users"]["owner"])


def test_each_chunk_extends_the_expiry(files_world):
    content = b"z" * 100
    session = _open(files_world, content)
    UploadSession.objects.filter(pk=session.pk).update(expires_at=timezone.now() + timedelta(seconds=5))
    session.refresh_from_db()
    session = _append(files_world, session, content[:10], 0)
    assert session.expires_at > timezone.now() + timedelta(hours=1)


# --- Download counts ----------------------------------------------------------------------------------------


def test_counts_are_written_in_one_statement_by_the_flush(files_world, django_assert_num_queries):
    base, draft = files_world["base"], files_world["draft"]
    for _ in range(3):
        downloads.download_recorded(base.pk)
    downloads.download_recorded(draft.pk)
    with django_assert_num_queries(1):
        assert downloads.downloads_flush() == 4
    assert Variant.objects.get(pk=base.pk).downloads == 3
    assert Variant.objects.get(pk=draft.pk).downloads == 1
    assert downloads.downloads_flush() == 0


def test_a_download_is_not_a_database_write(files_world, django_assert_num_queries):
    with django_assert_num_queries(0):
        for _ in range(50):
            downloads.download_recorded(files_world["base"].pk)
    assert downloads.downloads_pending(files_world["base"].pk) == 50


def test_without_redis_a_process_writes_its_counts_at_most_every_interval(
    files_world, settings, monkeypatch, django_assert_num_queries
):
    settings.MC_DOWNLOADS_REDIS_URL = ""
    settings.MC_DOWNLOADS_FLUSH_S = 60
    clock = [1000.0]
    monkeypatch.setattr(downloads.time, "monotonic", lambda: clock[0])
    base = files_world["base"]
    with django_assert_num_queries(0):
        for _ in range(5):
            downloads.download_recorded(base.pk)
            clock[0] += 10
    clock[0] += 20  # a minute after the first count
    with django_assert_num_queries(1):
        downloads.download_recorded(base.pk)
    assert Variant.objects.get(pk=base.pk).downloads == 6
    assert downloads.downloads_pending(base.pk) == 0


def test_unreachable_redis_falls_back_to_counting_in_process(files_world, settings):
    settings.MC_DOWNLOADS_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    downloads.download_recorded(files_world["base"].pk)
    assert downloads._pending[files_world["base"].pk] == 1
    settings.MC_DOWNLOADS_REDIS_URL = ""
    assert downloads.downloads_flush() == 1


@pytest.mark.skipif(not downloads._redis(), reason="no Redis configured (MC_DOWNLOADS_REDIS_URL)")
def test_redis_counts_survive_a_failed_flush(files_world, monkeypatch):
    base = files_world["base"]
    downloads.download_recorded(base.pk)
    downloads.download_recorded(base.pk)

    def broken(counts):  # type: ignore[no-untyped-def]
        raise RuntimeError("database down")

    monkeypatch.setattr(downloads, "_apply", broken)
    with pytest.raises(RuntimeError):
        downloads.downloads_flush()
    downloads.download_recorded(base.pk)  # counted meanwhile, in a new hash
    monkeypatch.undo()
    assert downloads.downloads_pending(base.pk) == 3
    assert downloads.downloads_flush() == 2  # the batch that failed first
    assert downloads.downloads_flush() == 1  # then the new one
    assert Variant.objects.get(pk=base.pk).downloads == 3


def test_the_beat_runs_the_flush_and_the_expiry(settings):
    from modelcommons.celery import app

    schedule = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"transfers.downloads_flush", "transfers.uploads_expire"} <= schedule
    app.loader.import_default_modules()
    assert {"transfers.downloads_flush", "transfers.uploads_expire"} <= set(app.tasks)
    from apps.transfers import tasks

    assert tasks.uploads_expire() == 0 and tasks.downloads_flush() == 0


def test_partial_files_left_without_a_session_are_removed(files_world, settings):
    import os

    content = b"q" * 100
    session = _send(files_world, _open(files_world, content), content, [50])
    orphan = settings.MC_UPLOAD_TEMP_DIR / "0b0e1f4e-0000-4000-8000-000000000000.part"
    orphan.write_bytes(b"left behind")
    fresh_orphan = settings.MC_UPLOAD_TEMP_DIR / "1b0e1f4e-0000-4000-8000-000000000000.part"
    fresh_orphan.write_bytes(b"just now")
    old = timezone.now().timestamp() - settings.MC_UPLOAD_SESSION_TTL_S - 60
    os.utime(orphan, (old, old))
    os.utime(session.part_path, (old, old))  # an open session's bytes stay, however old
    services.uploads_expire()
    assert not orphan.exists() and fresh_orphan.exists() and session.part_path.exists()


def test_upload_sessions_are_in_the_console(files_world, client):
    _open(files_world, b"abc")
    maintainer = files_world["users"]["maintainer"]
    maintainer.is_staff = True
    maintainer.save(update_fields=["is_staff"])
    client.force_login(maintainer)
    assert client.get("/admin/transfers/uploadsession/?q=new").status_code == 200
    session = UploadSession.objects.get()
    assert client.get(f"/admin/transfers/uploadsession/{session.pk}/change/").status_code == 200
    client.force_login(files_world["users"]["owner"])
    assert client.get("/admin/transfers/uploadsession/").status_code == 302
