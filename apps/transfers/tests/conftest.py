"""Fixtures of the transfer tests: private upload and download-count storage per test, and a small world of
variants with stored files."""

from __future__ import annotations

import hashlib
import json
import struct
import uuid
from collections.abc import Iterator

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.registry.services import artifact_add
from apps.registry.tests.factories import make_original, make_variant, publish_current
from apps.transfers import downloads


def safetensors_header(data_bytes: int) -> bytes:
    header = json.dumps({"weight": {"dtype": "U8", "shape": [data_bytes], "data_offsets": [0, data_bytes]}}).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header


def safetensors_bytes(data_bytes: int = 1000, seed: int = 1) -> bytes:
    """A valid safetensors file with one uint8 tensor of `data_bytes` bytes."""
    pattern = hashlib.sha256(str(seed).encode()).digest()
    data = (pattern * (data_bytes // len(pattern) + 1))[:data_bytes]
    return safetensors_header(data_bytes) + data


def store(revision, actor, path: str, content: bytes, fmt: str | None = None):  # type: ignore[no-untyped-def]
    """An artifact uploaded to platform storage (the one-shot path)."""
    return artifact_add(
        revision=revision, actor=actor, path=path, fmt=fmt, upload=SimpleUploadedFile(path.rsplit("/", 1)[-1], content)
    )


@pytest.fixture(autouse=True)
def private_transfer_state(settings, tmp_path) -> Iterator[None]:
    """Partial uploads under this test's tmp_path; download counts under a key of this test's own."""
    settings.MC_UPLOAD_TEMP_DIR = tmp_path / "uploads"
    settings.MC_DOWNLOADS_KEY = f"test:{uuid.uuid4().hex}:downloads"
    downloads._pending.clear()
    downloads._pending_since = None
    yield
    client = downloads._redis()
    if client is not None:
        key = settings.MC_DOWNLOADS_KEY
        client.delete(key, f"{key}:flushing", f"{key}:lock")
    downloads._pending.clear()
    downloads._pending_since = None


@pytest.fixture
def files_world(alice, bob, reviewer, maintainer, client_for):  # type: ignore[no-untyped-def]
    """commons/base-model, published, with stored files (one in a folder) and one recorded by URI; alice's
    draft alice/draft with one stored file; a client per role."""
    from rest_framework.test import APIClient

    base = make_original(maintainer, publish=False)
    weights = safetensors_bytes(4096)
    rev = base.current_revision
    store(rev, maintainer, "model.safetensors", weights)
    store(rev, maintainer, "config.json", b'{"model_type": "test"}')
    store(rev, maintainer, "1_Pooling/config.json", b'{"pooling_mode_mean_tokens": true}')
    artifact_add(
        revision=rev,
        actor=maintainer,
        path="remote.safetensors",
        uri="hf://org/x@main/remote.safetensors",
        sha256="b" * 64,
        size_bytes=10,
    )
    publish_current(base, maintainer)
    base.refresh_from_db()
    draft = make_variant(alice, "draft", [base])
    store(draft.current_revision, alice, "adapter.safetensors", safetensors_bytes(100, seed=2))
    clients = {
        "anonymous": APIClient(),
        "owner": client_for(alice),
        "other": client_for(bob),
        "reviewer": client_for(reviewer),
        "maintainer": client_for(maintainer),
    }
    return {
        "base": base,
        "draft": draft,
        "weights": weights,
        "clients": clients,
        "users": {"owner": alice, "other": bob, "reviewer": reviewer, "maintainer": maintainer},
    }
