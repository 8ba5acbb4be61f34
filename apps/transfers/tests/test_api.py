"""HTTP: the files of a revision and their download (Range, ETag, 304, 416, HEAD), resumable uploads (auth,
scopes, ownership, problem+json refusals), download counts in the variant representation, query counts."""

from __future__ import annotations

import hashlib
import io

import pytest
from django.db import connection

from apps.core.testing import count_queries, token_auth_queries
from apps.registry.models import Artifact, Variant
from apps.transfers import downloads
from apps.transfers.choices import UploadStatus
from apps.transfers.models import UploadSession

from .conftest import safetensors_bytes, store

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"
BASE = "/api/v1/variants/commons/base-model/revisions/1"
DRAFT = "/api/v1/variants/alice/draft/revisions/1"
CHUNK = "application/offset+octet-stream"


class BrokenStream:
    """A request body whose connection breaks after `data`."""

    def __init__(self, data: bytes):
        self._data = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        block = self._data.read(size)
        if not block:
            raise ConnectionResetError("the client went away")
        return block

    def readline(self, size: int = -1) -> bytes:
        return self.read(size)


def _body(response) -> bytes:  # type: ignore[no-untyped-def]
    return b"".join(response.streaming_content) if response.streaming else response.content


# --- The files list ----------------------------------------------------------------------------------------


def test_files_list_of_a_published_revision(files_world):
    resp = files_world["clients"]["anonymous"].get(f"{BASE}/files/")
    assert resp.status_code == 200
    rows = {row["path"]: row for row in resp.json()}
    assert list(rows) == ["1_Pooling/config.json", "config.json", "model.safetensors", "remote.safetensors"]
    weights = rows["model.safetensors"]
    assert weights["sha256"] == hashlib.sha256(files_world["weights"]).hexdigest()
    assert weights["size_bytes"] == len(files_world["weights"]) and weights["format"] == "safetensors"
    assert weights["stored"] is True and weights["download_url"].endswith(f"{BASE}/files/model.safetensors")
    assert rows["remote.safetensors"]["stored"] is False and rows["remote.safetensors"]["download_url"] is None
    assert rows["1_Pooling/config.json"]["download_url"].endswith("/files/1_Pooling/config.json")


@pytest.mark.parametrize(
    ("role", "expected"), [("anonymous", 404), ("other", 404), ("owner", 200), ("reviewer", 200), ("maintainer", 200)]
)
def test_files_of_a_draft_are_seen_by_its_insiders_only(files_world, role, expected):
    client = files_world["clients"][role]
    listing = client.get(f"{DRAFT}/files/")
    download = client.get(f"{DRAFT}/files/adapter.safetensors")
    assert listing.status_code == expected and download.status_code == expected
    if expected == 404:
        assert listing["Content-Type"] == PROBLEM and download["Content-Type"] == PROBLEM


def test_a_newer_draft_revision_of_a_published_variant_is_hidden(files_world):
    from apps.registry.services import revision_create

    base = files_world["base"]
    revision_create(variant=base, actor=files_world["users"]["maintainer"])
    assert files_world["clients"]["anonymous"].get(f"{BASE}/files/").status_code == 200
    newer = "/api/v1/variants/commons/base-model/revisions/2"
    assert files_world["clients"]["anonymous"].get(f"{newer}/files/").status_code == 404
    assert files_world["clients"]["other"].get(f"{newer}/files/model.safetensors").status_code == 404
    assert files_world["clients"]["maintainer"].get(f"{newer}/files/model.safetensors").status_code == 200


def test_files_list_query_count_does_not_grow_with_files(files_world):
    client = files_world["clients"]["owner"]
    client.get(f"{DRAFT}/files/")  # the token's last-used time is written on its first use
    with count_queries() as one:
        assert client.get(f"{DRAFT}/files/").status_code == 200
    revision = files_world["draft"].current_revision
    for i in range(12):
        store(revision, files_world["users"]["owner"], f"shard-{i:02d}.safetensors", safetensors_bytes(64, seed=i))
    with count_queries() as many:
        resp = client.get(f"{DRAFT}/files/")
    assert len(resp.json()) == 13
    assert len(many) == len(one)


# --- Downloads -----------------------------------------------------------------------------------------------


def test_download_streams_the_file_with_its_headers(files_world):
    resp = files_world["clients"]["anonymous"].get(f"{BASE}/files/model.safetensors")
    weights = files_world["weights"]
    assert resp.status_code == 200 and resp.streaming
    assert _body(resp) == weights
    assert resp["ETag"] == f'"{hashlib.sha256(weights).hexdigest()}"'
    assert resp["Content-Length"] == str(len(weights))
    assert resp["Accept-Ranges"] == "bytes"
    assert resp["Content-Type"] == "application/octet-stream"
    assert resp["Content-Disposition"] == 'attachment; filename="model.safetensors"'
    nested = files_world["clients"]["anonymous"].get(f"{BASE}/files/1_Pooling/config.json")
    assert _body(nested) == b'{"pooling_mode_mean_tokens": true}'
    assert nested["Content-Disposition"] == 'attachment; filename="config.json"'


def test_head_gives_the_headers_without_the_body(files_world):
    resp = files_world["clients"]["anonymous"].head(f"{BASE}/files/model.safetensors")
    assert resp.status_code == 200
    assert resp["Content-Length"] == str(len(files_world["weights"]))
    assert resp["ETag"].strip('"') == hashlib.sha256(files_world["weights"]).hexdigest()
    assert _body(resp) == b""


def test_if_none_match_is_answered_with_304(files_world):
    client = files_world["clients"]["anonymous"]
    etag = client.head(f"{BASE}/files/model.safetensors")["ETag"]
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        resp = client.get(f"{BASE}/files/model.safetensors", HTTP_IF_NONE_MATCH=header)
        assert resp.status_code == 304, header
        assert resp["ETag"] == etag and _body(resp) == b""
    assert client.get(f"{BASE}/files/model.safetensors", HTTP_IF_NONE_MATCH='"stale"').status_code == 200


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=100-", 100, None),
        ("bytes=-50", None, None),
        ("bytes=4000-999999", 4000, None),
    ],
)
def test_a_single_range_is_answered_with_206(files_world, header, start, end):
    weights = files_world["weights"]
    size = len(weights)
    if start is None:
        start = size - 50
    end = size - 1 if end is None else end
    resp = files_world["clients"]["anonymous"].get(f"{BASE}/files/model.safetensors", HTTP_RANGE=header)
    assert resp.status_code == 206
    assert _body(resp) == weights[start : end + 1]
    assert resp["Content-Range"] == f"bytes {start}-{end}/{size}"
    assert resp["Content-Length"] == str(end - start + 1)


def test_resuming_a_broken_download_in_several_ranges_gives_the_whole_file(files_world):
    client = files_world["clients"]["anonymous"]
    got = b""
    for end in (999, 2999, None):
        header = f"bytes={len(got)}-{'' if end is None else end}"
        got += _body(client.get(f"{BASE}/files/model.safetensors", HTTP_RANGE=header))
    assert got == files_world["weights"]


def test_unsatisfiable_and_ignored_ranges(files_world):
    client = files_world["clients"]["anonymous"]
    size = len(files_world["weights"])
    resp = client.get(f"{BASE}/files/model.safetensors", HTTP_RANGE=f"bytes={size}-")
    assert resp.status_code == 416 and resp["Content-Range"] == f"bytes */{size}"
    assert resp["Content-Type"] == PROBLEM and resp.json()["size_bytes"] == size
    for ignored in ("bytes=0-1,5-9", "lines=1-2", "bytes=9-3", "bytes=abc"):
        resp = client.get(f"{BASE}/files/model.safetensors", HTTP_RANGE=ignored)
        assert resp.status_code == 200 and _body(resp) == files_world["weights"], ignored
    # A partial copy of other bytes (If-Range with another ETag) gets the whole file.
    resp = client.get(f"{BASE}/files/model.safetensors", HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE='"old"')
    assert resp.status_code == 200


def test_missing_paths_and_bad_paths_are_problems(files_world):
    client = files_world["clients"]["anonymous"]
    missing = client.get(f"{BASE}/files/nope.safetensors")
    assert missing.status_code == 404 and missing["Content-Type"] == PROBLEM
    assert "nope.safetensors" in missing.json()["detail"]
    dots = client.get(f"{BASE}/files/a/../model.safetensors")
    assert dots.status_code == 400 and dots["Content-Type"] == PROBLEM and "path" in dots.json()["errors"]
    remote = client.get(f"{BASE}/files/remote.safetensors")
    assert remote.status_code == 404 and remote.json()["uri"] == "hf://org/x@main/remote.safetensors"


def test_a_file_lost_from_storage_is_a_404_not_a_500(files_world):
    artifact = Artifact.objects.get(revision__variant=files_world["base"], path="config.json")
    artifact.file.storage.delete(artifact.file.name)
    resp = files_world["clients"]["anonymous"].get(f"{BASE}/files/config.json")
    assert resp.status_code == 404 and resp["Content-Type"] == PROBLEM


def test_any_accept_header_is_served(files_world):
    resp = files_world["clients"]["anonymous"].get(f"{BASE}/files/config.json", HTTP_ACCEPT="application/x-nothing")
    assert resp.status_code == 200


# --- Download counts ---------------------------------------------------------------------------------------


def test_downloads_are_counted_once_per_download_and_shown_in_the_api(files_world):
    client = files_world["clients"]["anonymous"]
    base = files_world["base"]
    url = f"{BASE}/files/model.safetensors"
    _body(client.get(url))  # counted
    _body(client.get(url, HTTP_RANGE="bytes=0-10"))  # counted: starts at the first byte
    _body(client.get(url, HTTP_RANGE="bytes=11-"))  # the rest of a resumed download: not again
    client.head(url)  # not a download
    etag = client.head(url)["ETag"]
    client.get(url, HTTP_IF_NONE_MATCH=etag)  # 304: not a download
    assert downloads.downloads_pending(base.pk) == 2
    assert Variant.objects.get(pk=base.pk).downloads == 0  # nothing written per request
    assert downloads.downloads_flush() == 2
    assert downloads.downloads_pending(base.pk) == 0
    body = client.get("/api/v1/variants/commons/base-model/").json()
    assert body["downloads"] == 2
    listed = client.get("/api/v1/variants/?search=base-model").json()["results"]
    assert listed[0]["downloads"] == 2


# --- Resumable uploads ---------------------------------------------------------------------------------------


def _declare(client, content: bytes, path: str = "model-2.safetensors", **extra):  # type: ignore[no-untyped-def]
    body = {
        "variant": "alice/draft",
        "path": path,
        "size_bytes": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
        **extra,
    }
    return client.post("/api/v1/uploads/", body, format="json")


def _patch(client, upload_id, chunk: bytes, offset: int, **headers):  # type: ignore[no-untyped-def]
    return client.generic(
        "PATCH", f"/api/v1/uploads/{upload_id}/", chunk, content_type=CHUNK, HTTP_UPLOAD_OFFSET=str(offset), **headers
    )


def test_upload_in_chunks_then_complete(files_world):
    client = files_world["clients"]["owner"]
    content = safetensors_bytes(300_000, seed=7)
    created = _declare(client, content)
    assert created.status_code == 201, created.json()
    upload = created.json()
    assert upload["offset"] == 0 and upload["status"] == "open" and upload["revision"] == 1
    assert created["Location"] == f"/api/v1/uploads/{upload['id']}/"
    offset = 0
    for size in (100_000, 150_000, len(content) - 250_000):
        resp = _patch(client, upload["id"], content[offset : offset + size], offset)
        assert resp.status_code == 200, resp.json()
        offset += size
        assert resp.json()["offset"] == offset and resp["Upload-Offset"] == str(offset)
    head = client.head(f"/api/v1/uploads/{upload['id']}/")
    assert head.status_code == 200 and head["Upload-Offset"] == str(len(content))
    assert head["Upload-Length"] == str(len(content))
    done = client.post(f"/api/v1/uploads/{upload['id']}/complete/")
    assert done.status_code == 201, done.json()
    artifact = done.json()
    assert artifact["path"] == "model-2.safetensors" and artifact["sha256"] == hashlib.sha256(content).hexdigest()
    assert artifact["size_bytes"] == len(content) and artifact["stored"] is True
    again = client.post(f"/api/v1/uploads/{upload['id']}/complete/")
    assert again.status_code == 200 and again.json()["id"] == artifact["id"]
    got = client.get(f"{DRAFT}/files/model-2.safetensors")
    assert _body(got) == content


def test_head_after_a_broken_chunk_tells_where_to_resume(files_world):
    client = files_world["clients"]["owner"]
    content = safetensors_bytes(5000, seed=3)
    upload = _declare(client, content).json()
    # The client announced 4000 bytes but its connection broke after 1500 of them.
    resp = client.generic(
        "PATCH",
        f"/api/v1/uploads/{upload['id']}/",
        content[:1500],
        content_type=CHUNK,
        HTTP_UPLOAD_OFFSET="0",
        CONTENT_LENGTH="4000",
        **{"wsgi.input": BrokenStream(content[:1500])},
    )
    assert resp.status_code == 200 and resp.json()["offset"] == 1500
    assert client.head(f"/api/v1/uploads/{upload['id']}/")["Upload-Offset"] == "1500"
    assert client.get(f"/api/v1/uploads/{upload['id']}/").json()["offset"] == 1500
    assert _patch(client, upload["id"], content[1500:], 1500).status_code == 200
    assert client.post(f"/api/v1/uploads/{upload['id']}/complete/").status_code == 201


def test_upload_refusals_are_problems(files_world):
    client = files_world["clients"]["owner"]
    content = safetensors_bytes(2000, seed=5)
    upload = _declare(client, content).json()
    url = f"/api/v1/uploads/{upload['id']}/"
    wrong = _patch(client, upload["id"], content[:100], 50)
    assert wrong.status_code == 409 and wrong["Content-Type"] == PROBLEM and wrong.json()["offset"] == 0
    past = _patch(client, upload["id"], content + b"extra", 0)
    assert past.status_code == 413 and past["Content-Type"] == PROBLEM
    no_offset = client.generic("PATCH", url, content[:10], content_type=CHUNK)
    assert no_offset.status_code == 400 and "Upload-Offset" in no_offset.json()["errors"]
    json_body = client.generic("PATCH", url, b"{}", content_type="application/json", HTTP_UPLOAD_OFFSET="0")
    assert json_body.status_code == 415 and json_body["Content-Type"] == PROBLEM
    assert _patch(client, upload["id"], content[:1000], 0).status_code == 200
    early = client.post(f"{url}complete/")
    assert early.status_code == 409 and early.json()["offset"] == 1000 and "incomplete" in early.json()["detail"]
    assert Artifact.objects.filter(path="model-2.safetensors").count() == 0


def test_a_wrong_sha256_fails_the_upload_and_keeps_nothing(files_world):
    client = files_world["clients"]["owner"]
    content = safetensors_bytes(2000, seed=5)
    upload = _declare(client, content, sha256="0" * 64).json()
    assert _patch(client, upload["id"], content, 0).status_code == 200
    resp = client.post(f"/api/v1/uploads/{upload['id']}/complete/")
    assert resp.status_code == 400 and resp["Content-Type"] == PROBLEM
    assert hashlib.sha256(content).hexdigest() in resp.json()["errors"]["sha256"][0]
    session = UploadSession.objects.get(pk=upload["id"])
    assert session.status == UploadStatus.FAILED and not session.part_path.exists()
    assert not Artifact.objects.filter(path="model-2.safetensors").exists()
    again = _patch(client, upload["id"], content, 0)
    assert again.status_code == 409 and "failed" in again.json()["detail"]


def test_bytes_that_are_not_the_declared_format_are_refused_on_completion(files_world):
    client = files_world["clients"]["owner"]
    content = b"\x80\x04" + b"not a safetensors file" * 10  # a pickle's first bytes
    upload = _declare(client, content).json()
    assert _patch(client, upload["id"], content, 0).status_code == 200
    resp = client.post(f"/api/v1/uploads/{upload['id']}/complete/")
    assert resp.status_code == 400 and "format" in resp.json()["errors"]
    assert not Artifact.objects.filter(path="model-2.safetensors").exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"path": "../escape.safetensors"}, "path"),
        ({"path": "/abs.safetensors"}, "path"),
        ({"sha256": "z" * 64}, "sha256"),
        ({"size_bytes": -1}, "size_bytes"),
        ({"variant": "nobody"}, "variant"),
        ({"format": "exe"}, "format"),
        ({"path": "weights.bin", "format": "safetensors"}, "format"),
    ],
)
def test_bad_declarations_are_400_with_field_errors(files_world, body, field):
    content = b"x" * 10
    resp = _declare(files_world["clients"]["owner"], content, **body)
    assert resp.status_code == 400 and resp["Content-Type"] == PROBLEM
    assert field in resp.json()["errors"]


def test_a_file_larger_than_the_limit_is_refused_at_declaration(files_world, settings):
    settings.MC_ARTIFACT_MAX_BYTES = 1000
    resp = files_world["clients"]["owner"].post(
        "/api/v1/uploads/",
        {"variant": "alice/draft", "path": "big.safetensors", "size_bytes": 1001, "sha256": "a" * 64},
        format="json",
    )
    assert resp.status_code == 413 and resp["Content-Type"] == PROBLEM and "size_bytes" in resp.json()["errors"]


def test_chunks_are_capped_by_the_upload_limit(files_world, settings):
    client = files_world["clients"]["owner"]
    content = safetensors_bytes(3000, seed=9)
    upload = _declare(client, content).json()
    settings.MC_UPLOAD_MAX_BYTES = 1024
    assert _patch(client, upload["id"], content[:2000], 0).status_code == 413
    assert _patch(client, upload["id"], content[:1024], 0).status_code == 200


def test_an_existing_path_is_a_conflict(files_world):
    resp = _declare(files_world["clients"]["owner"], b"x", path="adapter.safetensors")
    assert resp.status_code == 409 and "path" in resp.json()["errors"]


@pytest.mark.parametrize(
    ("role", "expected"), [("anonymous", 401), ("other", 404), ("reviewer", 403), ("maintainer", 403), ("owner", 201)]
)
def test_only_the_owner_may_upload_to_a_draft(files_world, role, expected):
    assert _declare(files_world["clients"][role], b"x" * 10).status_code == expected


def test_a_published_revision_takes_no_upload(files_world):
    resp = files_world["clients"]["maintainer"].post(
        "/api/v1/uploads/",
        {"variant": "commons/base-model", "revision": 1, "path": "x.safetensors", "size_bytes": 1, "sha256": "a" * 64},
        format="json",
    )
    assert resp.status_code == 409 and resp["Content-Type"] == PROBLEM


def test_sessions_are_private_to_their_creator(files_world):
    owner, other = files_world["clients"]["owner"], files_world["clients"]["other"]
    content = b"x" * 10
    upload = _declare(owner, content).json()
    url = f"/api/v1/uploads/{upload['id']}/"
    assert other.get(url).status_code == 404
    assert other.head(url).status_code == 404
    assert _patch(other, upload["id"], content, 0).status_code == 404
    assert other.post(f"{url}complete/").status_code == 404
    assert files_world["clients"]["anonymous"].get(url).status_code == 401
    assert owner.get("/api/v1/uploads/not-a-uuid/").status_code == 404


def test_token_scopes(files_world, client_for):
    alice = files_world["users"]["owner"]
    reader = client_for(alice, scopes=("read",))
    assert _declare(reader, b"x").status_code == 403
    writer = client_for(alice, scopes=("write",))
    upload = _declare(writer, b"x").json()
    assert reader.get(f"/api/v1/uploads/{upload['id']}/").status_code == 200
    assert _patch(reader, upload["id"], b"x", 0).status_code == 403
    assert _patch(writer, upload["id"], b"x", 0).status_code == 200
    assert reader.post(f"/api/v1/uploads/{upload['id']}/complete/").status_code == 403


def test_downloads_cannot_be_set_through_the_api(files_world):
    resp = files_world["clients"]["owner"].patch("/api/v1/variants/alice/draft/", {"downloads": 10**6}, format="json")
    assert resp.status_code == 200 and resp.json()["downloads"] == 0
    assert Variant.objects.get(pk=files_world["draft"].pk).downloads == 0


def _upload_session_query_counts(client, content: bytes, path: str) -> dict[str, int]:  # type: ignore[no-untyped-def]
    counts = {}
    with count_queries() as queries:
        created = _declare(client, content, path=path)
    assert created.status_code == 201, created.json()
    counts["create"] = len(queries)
    url = f"/api/v1/uploads/{created.json()['id']}/"
    for name, call, expected in (
        ("head", lambda: client.head(url), 200),
        ("get", lambda: client.get(url), 200),
        ("patch", lambda: _patch(client, created.json()["id"], content, 0), 200),
        ("complete", lambda: client.post(f"{url}complete/"), 201),
    ):
        with count_queries() as queries:
            assert call().status_code == expected
        counts[name] = len(queries)
    return counts


def test_upload_session_query_counts_do_not_grow_with_the_revisions_files(files_world):
    """Each step of a resumable upload costs the same whether the revision holds 1 file or 13."""
    client = files_world["clients"]["owner"]
    client.get(f"{DRAFT}/files/")  # the token's last-used time is written on its first use
    one = _upload_session_query_counts(client, safetensors_bytes(300, seed=50), "one.safetensors")
    revision = files_world["draft"].current_revision
    for i in range(12):
        store(revision, files_world["users"]["owner"], f"shard-{i:02d}.safetensors", safetensors_bytes(64, seed=i))
    many = _upload_session_query_counts(client, safetensors_bytes(300, seed=51), "many.safetensors")
    assert many == one
    # The budgets (savepoints included): each step reads the token (and create the caller's roles) unless the
    # token cache holds them; create reads the variant (not its parents), the revision and its files (one
    # prefetch), checks the path and inserts; complete locks the session and the revision, checks the path,
    # inserts the artifact, appends the audit event (PostgreSQL: its seq and its insert; SQLite: the head row's
    # three) and closes the session.
    audit = 2 if connection.vendor == "postgresql" else 3
    token, token_and_roles = token_auth_queries(roles=False), token_auth_queries(roles=True)
    assert one == {
        "create": 7 + token_and_roles,
        "head": 1 + token,
        "get": 1 + token,
        "patch": 7 + token,
        "complete": 10 + token + audit,
    }
