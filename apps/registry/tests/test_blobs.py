"""Content-addressed storage (issue 13 part 4): a file's bytes are stored once, under their sha256, however many
artifacts name them; a blob goes only when no artifact names it."""

import hashlib
import os
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.registry import services
from apps.registry.blobs import blob_name
from apps.registry.models import Artifact
from apps.registry.tests.factories import make_original, make_variant

pytestmark = pytest.mark.django_db

CONTENT = b"GGUF" + b"\x01" * 100
DIGEST = hashlib.sha256(CONTENT).hexdigest()


def _upload(revision, actor, path="m.gguf"):
    return services.artifact_add(revision=revision, actor=actor, upload=SimpleUploadedFile(path, CONTENT))


def test_an_upload_is_stored_under_its_sha256(alice, maintainer):
    revision = make_variant(alice, "mine", [make_original(maintainer)]).current_revision
    art = _upload(revision, alice)
    assert art.file.name == blob_name(DIGEST) == f"blobs/sha256/{DIGEST[:2]}/{DIGEST[2:4]}/{DIGEST}"
    assert Path(art.local_path()).read_bytes() == CONTENT


def test_the_same_bytes_are_stored_once_however_many_artifacts_name_them(alice, maintainer, settings):
    parent = make_original(maintainer)
    first = _upload(make_variant(alice, "one", [parent]).current_revision, alice)
    stamp = os.stat(first.local_path()).st_mtime_ns
    second = _upload(make_variant(alice, "two", [parent]).current_revision, alice, path="copy.gguf")
    assert second.file.name == first.file.name
    assert os.stat(second.local_path()).st_mtime_ns == stamp  # not written again
    folder = Path(settings.MEDIA_ROOT) / "blobs/sha256" / DIGEST[:2] / DIGEST[2:4]
    assert sorted(p.name for p in folder.iterdir()) == [DIGEST]


def test_deleting_a_variant_keeps_a_blob_another_artifact_names(alice, maintainer, django_capture_on_commit_callbacks):
    parent = make_original(maintainer)
    one = make_variant(alice, "one", [parent])
    two = make_variant(alice, "two", [parent])
    _upload(one.current_revision, alice)
    _upload(two.current_revision, alice)
    with django_capture_on_commit_callbacks(execute=True):
        services.variant_delete(variant=one, actor=alice)
    assert default_storage.exists(blob_name(DIGEST))
    assert Artifact.objects.filter(file=blob_name(DIGEST)).count() == 1
    with django_capture_on_commit_callbacks(execute=True):
        services.variant_delete(variant=two, actor=alice)
    assert not default_storage.exists(blob_name(DIGEST))


def test_a_failed_add_keeps_a_blob_another_artifact_names(alice, maintainer, monkeypatch):
    parent = make_original(maintainer)
    _upload(make_variant(alice, "one", [parent]).current_revision, alice)
    revision = make_variant(alice, "two", [parent]).current_revision

    def boom(**kwargs):
        raise RuntimeError("audit down")

    monkeypatch.setattr("apps.registry.services.artifacts.audit_record", boom)
    with pytest.raises(RuntimeError):
        _upload(revision, alice)
    assert default_storage.exists(blob_name(DIGEST))
