"""HTTP: the internal endpoint workers stage files from (issue 13 part 5). Only a worker token for the blob opens
it: none is a 401, a bad or expired one a 401, one for another blob a 403; a user's token or session is no worker
token. Unknown bytes are a 404. Drafts' files are served (workers run jobs on drafts). One query."""

from __future__ import annotations

import hashlib

import pytest
from django.core import signing
from rest_framework.test import APIClient

from apps.registry.models import Artifact
from apps.transfers.worker_access import InvalidWorkerToken, worker_blob_grant, worker_blob_token

from .conftest import safetensors_bytes

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


def _url(sha256: str) -> str:
    return f"/api/v1/internal/blobs/{sha256}/"


def _worker(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Worker {token}")
    return client


def _body(response) -> bytes:  # type: ignore[no-untyped-def]
    return b"".join(response.streaming_content) if response.streaming else response.content


@pytest.fixture
def draft_blob(files_world):  # type: ignore[no-untyped-def]
    artifact = Artifact.objects.get(revision=files_world["draft"].current_revision, path="adapter.safetensors")
    return artifact, safetensors_bytes(100, seed=2)


def test_a_worker_token_fetches_a_drafts_file_in_one_query(draft_blob, django_assert_num_queries):
    artifact, content = draft_blob
    client = _worker(worker_blob_token(artifact.sha256))
    with django_assert_num_queries(1):
        response = client.get(_url(artifact.sha256))
    assert response.status_code == 200
    assert _body(response) == content and hashlib.sha256(content).hexdigest() == artifact.sha256
    assert response["ETag"] == f'"{artifact.sha256}"' and response["Content-Length"] == str(len(content))
    resumed = client.get(_url(artifact.sha256), HTTP_RANGE="bytes=40-")
    assert resumed.status_code == 206 and _body(resumed) == content[40:]
    assert resumed["Content-Range"] == f"bytes 40-{len(content) - 1}/{len(content)}"
    assert client.head(_url(artifact.sha256)).status_code == 200


def test_the_same_bytes_in_several_revisions_are_one_blob(files_world, django_assert_num_queries):
    weights = files_world["weights"]
    digest = hashlib.sha256(weights).hexdigest()
    assert Artifact.objects.filter(sha256=digest).count() >= 1
    with django_assert_num_queries(1):
        response = _worker(worker_blob_token(digest)).get(_url(digest))
    assert response.status_code == 200 and _body(response) == weights


def _problem(response, status: int) -> dict:  # type: ignore[no-untyped-def,type-arg]
    assert response.status_code == status, _body(response)[:300]
    assert response["Content-Type"].startswith(PROBLEM)
    return response.json()  # type: ignore[no-any-return]


def test_no_token_is_a_401_that_names_the_scheme(draft_blob):
    artifact, _ = draft_blob
    response = APIClient().get(_url(artifact.sha256))
    _problem(response, 401)
    assert response["WWW-Authenticate"].startswith("Worker")
    malformed = APIClient()
    malformed.credentials(HTTP_AUTHORIZATION="Worker")
    assert "Malformed" in _problem(malformed.get(_url(artifact.sha256)), 401)["detail"]


def test_a_bad_token_is_a_401(draft_blob, settings):
    artifact, _ = draft_blob
    token = worker_blob_token(artifact.sha256)
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    assert "bad signature" in _problem(_worker(tampered).get(_url(artifact.sha256)), 401)["detail"]
    # Signed with the platform's key but not for this purpose (another salt): refused.
    other_purpose = signing.dumps({"sha256": artifact.sha256, "exp": 2**40})
    _problem(_worker(other_purpose).get(_url(artifact.sha256)), 401)
    # Signed with another worker secret: refused.
    settings.MC_WORKER_SECRET = "one secret"
    foreign = worker_blob_token(artifact.sha256)
    settings.MC_WORKER_SECRET = "another secret"
    _problem(_worker(foreign).get(_url(artifact.sha256)), 401)
    assert _worker(worker_blob_token(artifact.sha256)).get(_url(artifact.sha256)).status_code == 200


def test_an_expired_token_is_a_401(draft_blob):
    artifact, _ = draft_blob
    expired = worker_blob_token(artifact.sha256, ttl_s=-1)
    assert "expired" in _problem(_worker(expired).get(_url(artifact.sha256)), 401)["detail"]
    with pytest.raises(InvalidWorkerToken):
        worker_blob_grant(worker_blob_token(artifact.sha256, ttl_s=60), now=10**12)


def test_a_token_for_another_blob_is_a_403(files_world, draft_blob):
    artifact, _ = draft_blob
    other = hashlib.sha256(files_world["weights"]).hexdigest()
    body = _problem(_worker(worker_blob_token(other)).get(_url(artifact.sha256)), 403)
    assert "another blob" in body["detail"]


def test_users_tokens_and_sessions_are_not_worker_tokens(files_world, draft_blob, client_for):
    artifact, _ = draft_blob
    maintainer = files_world["users"]["maintainer"]
    everything = client_for(maintainer, scopes=("read", "write", "jobs", "review", "admin"))
    _problem(everything.get(_url(artifact.sha256)), 401)
    session = APIClient()
    session.force_login(maintainer)
    _problem(session.get(_url(artifact.sha256)), 401)


def test_unknown_bytes_and_lost_files_are_404(draft_blob):
    artifact, _ = draft_blob
    unknown = "0" * 64
    _problem(_worker(worker_blob_token(unknown)).get(_url(unknown)), 404)
    assert APIClient().get("/api/v1/internal/blobs/not-a-sha256/").status_code == 404
    artifact.file.storage.delete(artifact.file.name)
    _problem(_worker(worker_blob_token(artifact.sha256)).get(_url(artifact.sha256)), 404)


def test_tokens_are_bound_to_their_blob_and_expiry():
    grant = worker_blob_grant(worker_blob_token("AB" * 32, ttl_s=30, now=1000.0), now=1010.0)
    assert grant.sha256 == "ab" * 32 and grant.expires_at == 1030
