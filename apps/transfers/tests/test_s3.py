"""Artifact storage in an S3-compatible bucket (issue 13 part 4), against a real moto server this module starts
on a loopback port and stops itself: uploads land once under their sha256, downloads are a 302 to a short-lived
presigned URL that serves the exact bytes, HEAD answers the headers here. Skipped when the `s3` extra is not
installed."""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

boto3 = pytest.importorskip("boto3", reason="the s3 extra (boto3, django-storages, moto) is not installed")
pytest.importorskip("storages.backends.s3", reason="the s3 extra (django-storages[s3]) is not installed")
pytest.importorskip("moto.server", reason="the s3 extra (moto[server]) is not installed")

from apps.registry.blobs import blob_name  # noqa: E402
from apps.registry.models import Artifact  # noqa: E402
from apps.registry.tests.factories import make_original, make_variant  # noqa: E402

from .conftest import safetensors_bytes  # noqa: E402

pytestmark = pytest.mark.django_db

BUCKET = "mc-artifacts"
KEY, SECRET = "testing", "testing-secret"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def moto_endpoint(tmp_path_factory):  # type: ignore[no-untyped-def]
    """A moto S3 server on a free loopback port, started here and stopped by its PID."""
    port = _free_port()
    exe = Path(sys.executable).with_name("moto_server")
    command = [str(exe)] if exe.exists() else [shutil.which("moto_server") or "moto_server"]
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    proc = subprocess.Popen([*command, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            if proc.poll() is not None:
                pytest.fail(f"moto_server exited with {proc.returncode}")
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        else:
            pytest.fail("moto_server did not answer within 30 s")
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def s3(settings, moto_endpoint):  # type: ignore[no-untyped-def]
    """The default storage switched to an empty bucket of the moto server, as MC_STORAGE=s3 configures it."""
    client = boto3.client(
        "s3", endpoint_url=moto_endpoint, aws_access_key_id=KEY, aws_secret_access_key=SECRET, region_name="us-east-1"
    )
    client.create_bucket(Bucket=BUCKET)
    settings.MC_DOWNLOAD_REDIRECT_TTL_S = 120
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": BUCKET,
                "endpoint_url": moto_endpoint,
                "region_name": "us-east-1",
                "access_key": KEY,
                "secret_key": SECRET,
                "querystring_auth": True,
                "querystring_expire": 120,
                "signature_version": "s3v4",
                "file_overwrite": True,
                "default_acl": None,
            },
        },
    }
    yield client
    for obj in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=obj["Key"])
    client.delete_bucket(Bucket=BUCKET)


@pytest.fixture
def puts(monkeypatch):  # type: ignore[no-untyped-def]
    """The names the S3 storage writes."""
    from storages.backends.s3 import S3Storage

    written: list[str] = []
    original = S3Storage._save

    def spy(self, name, content):  # type: ignore[no-untyped-def]
        written.append(name)
        return original(self, name, content)

    monkeypatch.setattr(S3Storage, "_save", spy)
    return written


def _upload(client, owner: str, name: str, path: str, content: bytes):  # type: ignore[no-untyped-def]
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post(
        f"/api/v1/variants/{owner}/{name}/revisions/1/artifacts/",
        {"path": path, "file": SimpleUploadedFile(path, content)},
        format="multipart",
    )


def test_uploads_land_in_the_bucket_once_under_their_sha256(s3, puts, alice, maintainer, client_for):
    parent = make_original(maintainer)
    make_variant(alice, "one", [parent])
    make_variant(alice, "two", [parent])
    owner = client_for(alice)
    weights = safetensors_bytes(2048, seed=7)
    digest = hashlib.sha256(weights).hexdigest()
    first = _upload(owner, "alice", "one", "model.safetensors", weights)
    assert first.status_code == 201, first.content
    body = s3.get_object(Bucket=BUCKET, Key=blob_name(digest))["Body"].read()
    assert body == weights
    assert puts == [blob_name(digest)]
    second = _upload(owner, "alice", "two", "copy.safetensors", weights)
    assert second.status_code == 201, second.content
    assert puts == [blob_name(digest)]  # the second revision names the stored blob: nothing written again
    assert set(Artifact.objects.values_list("file", flat=True)) == {blob_name(digest)}
    keys = [obj["Key"] for obj in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert keys == [blob_name(digest)]
    assert Artifact.objects.get(path="copy.safetensors").local_path() is None


def _fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    assert urlparse(url).hostname == "127.0.0.1"
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 (loopback moto server)
        return answer.status, answer.read(), dict(answer.headers)


@pytest.mark.parametrize("prefix", ["/api/v1/variants/alice/one/revisions/1/files/", "/alice/one/resolve/main/"])
def test_downloads_redirect_to_a_presigned_url_that_serves_the_bytes(s3, alice, maintainer, client_for, prefix):
    make_variant(alice, "one", [make_original(maintainer)])
    owner = client_for(alice)
    weights = safetensors_bytes(3000, seed=8)
    digest = hashlib.sha256(weights).hexdigest()
    assert _upload(owner, "alice", "one", "model.safetensors", weights).status_code == 201
    url = f"{prefix}model.safetensors"

    head = owner.head(url)
    assert head.status_code == 200
    assert head["ETag"] == f'"{digest}"' and head["Content-Length"] == str(len(weights))
    if "resolve" in prefix:
        assert head["X-Linked-Etag"] == f'"{digest}"' and head["X-Linked-Size"] == str(len(weights))
        assert head["X-Repo-Commit"]

    answer = owner.get(url)
    assert answer.status_code == 302
    assert answer["ETag"] == f'"{digest}"'
    location = answer["Location"]
    query = parse_qs(urlparse(location).query)
    assert urlparse(location).path == f"/{BUCKET}/{blob_name(digest)}"
    assert query["X-Amz-Expires"] == ["120"]
    assert "model.safetensors" in query["response-content-disposition"][0]
    status, body, headers = _fetch(location)
    assert status == 200 and body == weights
    assert "model.safetensors" in headers["Content-Disposition"]
    # A resumed download sends its Range to the storage, which answers it.
    status, body, _ = _fetch(location, {"Range": "bytes=100-"})
    assert status == 206 and body == weights[100:]

    assert owner.get(url, HTTP_IF_NONE_MATCH=f'"{digest}"').status_code == 304


@pytest.mark.parametrize("mode", ["s3", "auto"])
def test_a_worker_stages_the_files_straight_from_the_bucket(
    s3, settings, tmp_path, alice, maintainer, client_for, mode
):
    """Issue 13 part 5: a worker reads a job's files from the bucket itself (get_object on the blob's key), into
    its own cache, with no request to the platform and no shared disk."""
    from contextlib import ExitStack
    from types import SimpleNamespace

    from workers.execution import resolve_artifacts

    settings.MC_STORAGE, settings.MC_WORKER_STAGING = "s3", mode
    settings.MC_WORKER_CACHE_DIR = tmp_path / "worker-cache"
    settings.MC_PLATFORM_URL = "http://127.0.0.1:9"  # nothing listens: the bucket must serve
    variant = make_variant(alice, "one", [make_original(maintainer)])
    weights = safetensors_bytes(5000, seed=12)
    assert _upload(client_for(alice), "alice", "one", "model.safetensors", weights).status_code == 201
    digest = hashlib.sha256(weights).hexdigest()
    with ExitStack() as pins:
        (spec,) = resolve_artifacts(
            SimpleNamespace(revision_id=variant.current_revision_id), frozenset({"safetensors"}), pins
        )
        assert Path(spec.path) == tmp_path / "worker-cache" / "blobs" / "sha256" / digest[:2] / digest[2:4] / digest
        assert Path(spec.path).read_bytes() == weights and spec.sha256 == digest and spec.name == "model.safetensors"


@pytest.mark.django_db(transaction=True)
def test_http_staging_follows_the_platforms_redirect_to_the_bucket(s3, live_server, settings, tmp_path, maintainer):
    """A worker without bucket credentials (MC_WORKER_STAGING=http) asks the platform, which answers with a
    presigned URL of the bucket; the worker's token goes to the platform only, and the bytes come from S3."""
    from contextlib import ExitStack
    from types import SimpleNamespace

    from apps.transfers.tests.conftest import store
    from workers.execution import resolve_artifacts

    settings.MC_STORAGE, settings.MC_WORKER_STAGING = "s3", "http"
    settings.MC_WORKER_CACHE_DIR = tmp_path / "worker-cache"
    settings.MC_PLATFORM_URL = live_server.url
    base = make_original(maintainer, name="in-bucket", publish=False)  # a draft: workers read it all the same
    weights = safetensors_bytes(30_000, seed=13)
    store(base.current_revision, maintainer, "model.safetensors", weights)
    with ExitStack() as pins:
        (spec,) = resolve_artifacts(
            SimpleNamespace(revision_id=base.current_revision_id), frozenset({"safetensors"}), pins
        )
        assert Path(spec.path).read_bytes() == weights
        assert Path(spec.path).is_relative_to(tmp_path / "worker-cache")


def test_a_blob_missing_from_the_bucket_fails_as_artifact_unavailable(
    s3, settings, tmp_path, alice, maintainer, client_for
):
    from types import SimpleNamespace

    from apps.benchmarks.choices import FailureReason
    from workers.execution import resolve_artifacts
    from workers.runners.base import RunnerError

    settings.MC_STORAGE, settings.MC_WORKER_STAGING = "s3", "s3"
    settings.MC_WORKER_CACHE_DIR = tmp_path / "worker-cache"
    variant = make_variant(alice, "one", [make_original(maintainer)])
    weights = safetensors_bytes(64)
    assert _upload(client_for(alice), "alice", "one", "model.safetensors", weights).status_code == 201
    s3.delete_object(Bucket=BUCKET, Key=blob_name(hashlib.sha256(weights).hexdigest()))
    with pytest.raises(RunnerError) as exc:
        resolve_artifacts(SimpleNamespace(revision_id=variant.current_revision_id), frozenset({"safetensors"}))
    assert exc.value.reason == FailureReason.ARTIFACT_UNAVAILABLE
    assert "'model.safetensors'" in exc.value.message and f"bucket {BUCKET}" in exc.value.message


def test_a_resumable_upload_lands_in_the_bucket_and_its_partial_file_goes(s3, settings, alice, maintainer, client_for):
    make_variant(alice, "one", [make_original(maintainer)])
    owner = client_for(alice)
    content = safetensors_bytes(200_000, seed=9)
    digest = hashlib.sha256(content).hexdigest()
    body = {"variant": "alice/one", "path": "big.safetensors", "size_bytes": len(content), "sha256": digest}
    created = owner.post("/api/v1/uploads/", body, format="json")
    assert created.status_code == 201, created.json()
    url = f"/api/v1/uploads/{created.json()['id']}/"
    for offset in (0, 120_000):
        chunk = content[offset : offset + 120_000]
        resp = owner.generic(
            "PATCH", url, chunk, content_type="application/offset+octet-stream", HTTP_UPLOAD_OFFSET=str(offset)
        )
        assert resp.status_code == 200, resp.json()
    done = owner.post(f"{url}complete/")
    assert done.status_code == 201, done.json()
    assert s3.get_object(Bucket=BUCKET, Key=blob_name(digest))["Body"].read() == content
    assert not list(Path(settings.MC_UPLOAD_TEMP_DIR).glob("*.part"))


@pytest.mark.django_db(transaction=True)
def test_hf_hub_download_follows_the_redirect_to_the_bucket(s3, live_server, monkeypatch, tmp_path, maintainer):
    """huggingface_hub's own download: HEAD for the metadata here, GET redirected to the presigned URL."""
    pytest.importorskip("huggingface_hub", reason="huggingface_hub is not installed")
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.utils._http import close_session

    from apps.registry.tests.factories import publish_current
    from apps.transfers.tests.conftest import store

    base = make_original(maintainer, name="in-bucket", publish=False)
    weights = safetensors_bytes(40_000, seed=11)
    store(base.current_revision, maintainer, "model.safetensors", weights)
    publish_current(base, maintainer)
    endpoint = live_server.url
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_IMPLICIT_TOKEN", True)
    close_session()
    try:
        path = hf_hub_download("commons/in-bucket", "model.safetensors", local_dir=tmp_path / "out")
        assert Path(path).read_bytes() == weights
    finally:
        close_session()
