"""HTTP: the Hub-compatible read API answers with the fields, headers and error codes huggingface_hub reads;
visibility is the registry's (a draft is RepoNotFound to anyone who may not see it)."""

from __future__ import annotations

import hashlib

import pytest

from apps.core.testing import count_queries, token_auth_queries
from apps.hub.selectors import commit_id
from apps.registry.models import Artifact
from apps.registry.services import revision_create
from apps.transfers import downloads
from apps.transfers.tests.conftest import safetensors_bytes, store

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"
BASE = "/api/models/commons/base-model"
DRAFT = "/api/models/alice/draft"


def _body(response) -> bytes:  # type: ignore[no-untyped-def]
    return b"".join(response.streaming_content) if response.streaming else response.content


def _manifest_sha1(rows: list[tuple[str, str]]) -> str:
    return hashlib.sha1("".join(f"{p} {s}\n" for p, s in sorted(rows)).encode()).hexdigest()


def _commit(variant, number: int = 1) -> str:  # type: ignore[no-untyped-def]
    return commit_id(Artifact.objects.filter(revision__variant=variant, revision__number=number))


def _hub_error(resp, code: str, status: int = 404) -> None:  # type: ignore[no-untyped-def]
    assert resp.status_code == status
    assert resp["X-Error-Code"] == code
    assert resp["X-Error-Message"]
    if resp.content:
        body = resp.json()
        assert resp["Content-Type"] == PROBLEM and body["status"] == status and body["error"]


def test_the_commit_id_is_the_sha1_of_the_sorted_manifest(files_world):
    rows = list(Artifact.objects.filter(revision__variant=files_world["base"]).values_list("path", "sha256"))
    assert len(rows) == 4
    assert _commit(files_world["base"]) == _manifest_sha1(rows)
    assert commit_id([]) == hashlib.sha1(b"").hexdigest()


def test_model_info_of_a_published_model(files_world):
    resp = files_world["clients"]["anonymous"].get(BASE)
    assert resp.status_code == 200
    info = resp.json()
    assert info["id"] == "commons/base-model" and info["author"] == "commons"
    assert info["sha"] == _commit(files_world["base"])
    assert info["private"] is False and info["gated"] is False
    assert info["cardData"]["license"] == "apache-2.0"
    assert "license:apache-2.0" in info["tags"]
    assert info["lastModified"].endswith("Z") and "." in info["lastModified"]
    siblings = {s["rfilename"]: s for s in info["siblings"]}
    # Files recorded by URI only have no bytes here: they are not part of the repo served.
    assert set(siblings) == {"1_Pooling/config.json", "config.json", "model.safetensors"}
    weights = siblings["model.safetensors"]
    assert weights["size"] == len(files_world["weights"])
    assert weights["lfs"]["sha256"] == hashlib.sha256(files_world["weights"]).hexdigest()
    assert weights["lfs"]["size"] == weights["size"] and weights["lfs"]["pointerSize"] > 100
    assert len(weights["blobId"]) == 40
    assert info["safetensors"] == {"parameters": {"U8": 4096}, "total": 4096}  # from the file's header


def test_revision_ids_main_number_and_commit(files_world):
    client = files_world["clients"]["anonymous"]
    sha = _commit(files_world["base"])
    for rev in ("main", "1", sha, sha.upper()):
        resp = client.get(f"{BASE}/revision/{rev}")
        assert resp.status_code == 200, rev
        assert resp.json()["sha"] == sha
    for rev in ("2", "0", "deadbeef" * 5, "v1.0", "refs/pr/1", "99999999999999"):
        _hub_error(client.get(f"{BASE}/revision/{rev}"), "RevisionNotFound")


def test_a_newer_draft_revision_is_private_and_main_stays_published(files_world):
    base, maintainer = files_world["base"], files_world["users"]["maintainer"]
    revision = revision_create(variant=base, actor=maintainer)
    store(revision, maintainer, "extra.safetensors", safetensors_bytes(10, seed=11))
    published = _commit(base, 1)
    draft_sha = _commit(base, 2)
    assert draft_sha != published
    anonymous, insider = files_world["clients"]["anonymous"], files_world["clients"]["maintainer"]
    assert anonymous.get(BASE).json()["sha"] == published
    assert insider.get(BASE).json()["sha"] == published  # main is what is published
    for rev in ("2", draft_sha):
        _hub_error(anonymous.get(f"{BASE}/revision/{rev}"), "RevisionNotFound")
        _hub_error(anonymous.get(f"/commons/base-model/resolve/{rev}/extra.safetensors"), "RevisionNotFound")
        assert insider.get(f"{BASE}/revision/{rev}").json()["sha"] == draft_sha
    assert insider.get(f"/commons/base-model/resolve/{draft_sha}/extra.safetensors").status_code == 200


@pytest.mark.parametrize(
    ("role", "visible"),
    [("anonymous", False), ("other", False), ("owner", True), ("reviewer", True), ("maintainer", True)],
)
def test_a_draft_is_repo_not_found_to_those_who_may_not_see_it(files_world, role, visible):
    client = files_world["clients"][role]
    urls = [DRAFT, f"{DRAFT}/revision/main", f"{DRAFT}/tree/main", "/alice/draft/resolve/main/adapter.safetensors"]
    for url in urls:
        resp = client.get(url)
        if visible:
            assert resp.status_code == 200, url
        else:
            _hub_error(resp, "RepoNotFound")
    if visible:  # nothing published: main is the current revision for its insiders
        assert client.get(DRAFT).json()["private"] is True
    _hub_error(client.get("/api/models/nobody/nothing"), "RepoNotFound")


def test_tree_lists_files_and_folders(files_world):
    client = files_world["clients"]["anonymous"]
    root = client.get(f"{BASE}/tree/main")
    assert root.status_code == 200
    entries = {e["path"]: e for e in root.json()}
    assert set(entries) == {"1_Pooling", "config.json", "model.safetensors"}
    assert entries["1_Pooling"]["type"] == "directory" and len(entries["1_Pooling"]["oid"]) == 40
    weights = entries["model.safetensors"]
    assert weights["type"] == "file" and weights["size"] == len(files_world["weights"])
    assert weights["lfs"]["oid"] == hashlib.sha256(files_world["weights"]).hexdigest()
    for flag in ("true", "True", "1"):
        recursive = {e["path"] for e in client.get(f"{BASE}/tree/main?recursive={flag}").json()}
        assert recursive == {"1_Pooling", "1_Pooling/config.json", "config.json", "model.safetensors"}
    inside = client.get(f"{BASE}/tree/main/1_Pooling").json()
    assert [e["path"] for e in inside] == ["1_Pooling/config.json"]
    quoted = client.get(f"{BASE}/tree/1/1_Pooling%2F").json()
    assert [e["path"] for e in quoted] == ["1_Pooling/config.json"]
    _hub_error(client.get(f"{BASE}/tree/main/additional_chat_templates"), "EntryNotFound")
    _hub_error(client.get(f"{BASE}/tree/v2"), "RevisionNotFound")


def test_tree_query_count_does_not_grow_with_files(files_world):
    client = files_world["clients"]["owner"]
    client.get(f"{DRAFT}/tree/main")  # the token's last-used time is written on its first use
    with count_queries() as one:
        assert client.get(f"{DRAFT}/tree/main?recursive=true").status_code == 200
    for i in range(12):
        store(
            files_world["draft"].current_revision,
            files_world["users"]["owner"],
            f"d/s-{i}.safetensors",
            safetensors_bytes(16, seed=i),
        )
    with count_queries() as many:
        resp = client.get(f"{DRAFT}/tree/main?recursive=true")
    assert len(resp.json()) == 14
    assert len(many) == len(one)


def test_resolve_head_has_the_metadata_the_client_reads(files_world):
    resp = files_world["clients"]["anonymous"].head("/commons/base-model/resolve/main/model.safetensors")
    sha256 = hashlib.sha256(files_world["weights"]).hexdigest()
    assert resp.status_code == 200
    assert resp["X-Repo-Commit"] == _commit(files_world["base"])
    assert resp["X-Linked-Etag"] == f'"{sha256}"' and resp["ETag"] == f'"{sha256}"'
    assert resp["X-Linked-Size"] == resp["Content-Length"] == str(len(files_world["weights"]))
    assert resp["Accept-Ranges"] == "bytes"
    assert _body(resp) == b""


def test_resolve_get_full_and_ranged(files_world):
    client = files_world["clients"]["anonymous"]
    weights = files_world["weights"]
    full = client.get("/commons/base-model/resolve/main/model.safetensors")
    assert full.status_code == 200 and _body(full) == weights
    nested = client.get("/commons/base-model/resolve/1/1_Pooling/config.json")
    assert _body(nested) == b'{"pooling_mode_mean_tokens": true}'
    part = client.get("/commons/base-model/resolve/main/model.safetensors", HTTP_RANGE="bytes=100-")
    assert part.status_code == 206 and _body(part) == weights[100:]
    assert part["X-Repo-Commit"] == _commit(files_world["base"])
    etag = full["ETag"]
    assert client.get("/commons/base-model/resolve/main/model.safetensors", HTTP_IF_NONE_MATCH=etag).status_code == 304
    past = client.get("/commons/base-model/resolve/main/model.safetensors", HTTP_RANGE=f"bytes={len(weights)}-")
    assert past.status_code == 416 and past["Content-Type"] == PROBLEM
    assert past["Content-Range"] == f"bytes */{len(weights)}" and past["X-Repo-Commit"]


def test_resolve_errors_carry_the_hub_codes(files_world):
    client = files_world["clients"]["anonymous"]
    missing = client.get("/commons/base-model/resolve/main/model.safetensors.index.json")
    _hub_error(missing, "EntryNotFound")
    assert missing["X-Repo-Commit"] == _commit(files_world["base"])  # the client caches the absence per commit
    _hub_error(client.head("/commons/base-model/resolve/main/nope.json"), "EntryNotFound")
    _hub_error(client.get("/commons/base-model/resolve/main/remote.safetensors"), "EntryNotFound")
    _hub_error(client.get("/commons/base-model/resolve/main/a/../config.json"), "EntryNotFound")
    _hub_error(client.get("/commons/base-model/resolve/nope/config.json"), "RevisionNotFound")
    _hub_error(client.get("/commons/nothing/resolve/main/config.json"), "RepoNotFound")


def test_tokens_mc_tokens_count_and_foreign_tokens_are_ignored(files_world, client_for):
    from rest_framework.test import APIClient

    foreign = APIClient()
    foreign.credentials(HTTP_AUTHORIZATION="Bearer hf_abcdefghijklmnopqrstuvwxyz")
    assert foreign.get(BASE).status_code == 200  # a Hugging Face token from the environment: anonymous here
    _hub_error(foreign.get(DRAFT), "RepoNotFound")
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Bearer mc_not-a-real-token")
    resp = bad.get(BASE)
    assert resp.status_code == 401 and resp["X-Error-Message"] == "Invalid credentials in Authorization header"
    owner_read_only = client_for(files_world["users"]["owner"], scopes=("read",))
    assert owner_read_only.get(DRAFT).status_code == 200
    jobs_only = client_for(files_world["users"]["owner"], scopes=("jobs",))
    assert jobs_only.get(DRAFT).status_code == 403


def test_resolve_downloads_are_counted(files_world):
    client = files_world["clients"]["anonymous"]
    base = files_world["base"]
    client.head("/commons/base-model/resolve/main/config.json")
    _body(client.get("/commons/base-model/resolve/main/config.json"))
    assert downloads.downloads_pending(base.pk) == 1
    downloads.downloads_flush()
    assert client.get(BASE).json()["downloads"] == 1


def test_hub_paths_are_not_in_the_openapi_schema(files_world):
    schema = files_world["clients"]["anonymous"].get("/api/schema/?format=json")
    assert schema.status_code == 200
    assert not [p for p in schema.json()["paths"] if p.startswith("/api/models")]


@pytest.mark.parametrize("path", ["", "/revision/main", "/revision/1"])
def test_model_info_query_count_does_not_grow_with_files(files_world, path):
    client = files_world["clients"]["owner"]
    client.get(DRAFT)  # the token's last-used time is written on its first use
    with count_queries() as one:
        first = client.get(f"{DRAFT}{path}")
    assert first.status_code == 200 and len(first.json()["siblings"]) == 1
    for i in range(12):
        store(
            files_world["draft"].current_revision,
            files_world["users"]["owner"],
            f"d/s-{i}.safetensors",
            safetensors_bytes(16, seed=i),
        )
    with count_queries() as many:
        resp = client.get(f"{DRAFT}{path}")
    assert len(resp.json()["siblings"]) == 13
    budget = 4 + token_auth_queries(roles=True)
    assert len(many) == len(one) == budget
    commit = resp.json()["sha"]
    with count_queries() as by_commit:
        assert client.get(f"{DRAFT}/revision/{commit}").status_code == 200
    assert len(by_commit) == budget
