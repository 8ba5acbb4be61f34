"""The web upload form streams through the same capped upload handler as the API (issue 12, finding 8)."""

from __future__ import annotations

import io

import pytest
from django.test import Client

from apps.registry.models import Artifact
from apps.registry.tests.factories import make_original, make_variant, onnx_bytes

pytestmark = pytest.mark.django_db

URL = "/variants/alice/draft/revisions/1/artifacts/"


@pytest.fixture
def browser(alice, maintainer):
    """Alice's browser, CSRF enforced as in production: Django's CSRF check reads the form body first."""
    make_variant(alice, "draft", [make_original(maintainer)])
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    client.get("/variants/alice/draft/")
    return client


def _post(client, content, **extra):
    upload = io.BytesIO(content)
    upload.name = "model.onnx"
    return client.post(URL, {"file": upload, "csrfmiddlewaretoken": client.cookies["csrftoken"].value}, **extra)


def test_web_upload_is_capped_while_streaming(browser, settings, monkeypatch):
    from django.core.files import uploadhandler

    from apps.registry.uploads import MULTIPART_OVERHEAD, HashingUploadHandler

    seen = []
    original = HashingUploadHandler.receive_data_chunk
    monkeypatch.setattr(
        HashingUploadHandler,
        "receive_data_chunk",
        lambda self, raw, start: (seen.append(len(raw)), original(self, raw, start))[1],
    )
    for default in (uploadhandler.MemoryFileUploadHandler, uploadhandler.TemporaryFileUploadHandler):
        monkeypatch.setattr(default, "receive_data_chunk", lambda *a: pytest.fail("default upload handler used"))
    settings.MC_UPLOAD_MAX_BYTES = 1000
    response = _post(browser, onnx_bytes(b"x" * (MULTIPART_OVERHEAD // 2)))
    assert response.status_code == 413 and b"1000-byte limit" in response.content
    assert seen and not Artifact.objects.filter(path="model.onnx").exists()
    # Past the declared Content-Length: refused before a byte is read.
    seen.clear()
    assert _post(browser, onnx_bytes(b"x" * 200_000)).status_code == 413 and seen == []


def test_web_upload_within_the_cap_still_works(browser):
    response = _post(browser, onnx_bytes(b"x" * 5000))
    assert response.status_code == 302, response.content[:500]
    assert Artifact.objects.get(path="model.onnx").size_bytes == len(onnx_bytes(b"x" * 5000))


def test_web_upload_of_a_pickle_as_onnx_is_refused(browser):
    import pickle

    response = _post(browser, pickle.dumps({"w": 1}, protocol=0))
    assert response.status_code == 400 and b"pickle" in response.content
